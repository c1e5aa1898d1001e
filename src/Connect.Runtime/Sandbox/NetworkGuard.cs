using System.Globalization;
using System.Text;

namespace Connect.Runtime.Sandbox;

/// <summary>
/// Keeps content off this host's own services. Content shares the host's network namespace so that its outbound
/// connections (databases, APIs) work, and therefore could reach every listener on this host: the Orleans silo (which
/// takes unauthenticated grain calls), Kestrel, other content, a local database. An nftables table keyed on the
/// run-as user's uid rejects any connection from content to an address of this host, except to ports listed in its
/// <c>allowed_ports</c> set and DNS, and any connection to the silo ports of other nodes. Content reaches its own front
/// end through a Unix socket, which the rule does not touch.
/// </summary>
/// <remarks>
/// One table per run-as uid, shared by every node on the host: nodes add their ports to its sets rather than each
/// writing a table of its own, since a reject in any table would override another table's accept.
/// </remarks>
public static class NetworkGuard
{
    public static string TableName(int uid) => $"connect_sandbox_{uid.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The nft script that creates the table, its sets and its rules.</summary>
    public static string CreateScript(int uid)
    {
        var u = uid.ToString(CultureInfo.InvariantCulture);
        var owner = "meta skuid " + u;
        return new StringBuilder()
            .Append("table inet ").Append(TableName(uid)).Append(" {\n")
            .Append("  set allowed_ports { type inet_service; }\n")
            .Append("  set silo_ports { type inet_service; }\n")
            .Append("  chain output {\n")
            .Append("    type filter hook output priority 0; policy accept;\n")
            .Append("    ").Append(owner).Append(" fib daddr type local udp dport 53 accept\n")
            .Append("    ").Append(owner).Append(" fib daddr type local tcp dport 53 accept\n")
            .Append("    ").Append(owner).Append(" fib daddr type local tcp dport @allowed_ports accept\n")
            .Append("    ").Append(owner).Append(" fib daddr type local reject\n")
            .Append("    ").Append(owner).Append(" tcp dport @silo_ports reject\n")
            .Append("  }\n}\n")
            .ToString();
    }

    /// <summary>Installs the table (once per host) and adds this node's ports; returns null on success, else why it could not.</summary>
    public static string? Apply(int uid, IReadOnlyCollection<int> siloPorts, IReadOnlyCollection<int> allowedLocalPorts)
    {
        var nft = Nft();
        if (nft is null)
        {
            return "nft (nftables) is not installed";
        }
        var table = TableName(uid);
        if (RunAsUser.RunExitCode(nft, "list", "table", "inet", table) != 0)
        {
            var failure = RunScript(nft, CreateScript(uid));
            // Another node may have created it in between: only a table that still is not there is a failure.
            if (failure is not null && RunAsUser.RunExitCode(nft, "list", "table", "inet", table) != 0)
            {
                return failure;
            }
        }
        var elements = new StringBuilder();
        if (siloPorts.Count > 0)
        {
            elements.Append("add element inet ").Append(table).Append(" silo_ports { ").Append(Join(siloPorts)).Append(" }\n");
        }
        if (allowedLocalPorts.Count > 0)
        {
            elements.Append("add element inet ").Append(table).Append(" allowed_ports { ").Append(Join(allowedLocalPorts)).Append(" }\n");
        }
        return elements.Length == 0 ? null : RunScript(nft, elements.ToString());
    }

    /// <summary>Takes this node's allowed ports out again (graceful shutdown); the table and its rules stay.</summary>
    public static void Release(int uid, IReadOnlyCollection<int> allowedLocalPorts)
    {
        if (allowedLocalPorts.Count > 0 && Nft() is { } nft)
        {
            RunScript(nft, $"delete element inet {TableName(uid)} allowed_ports {{ {Join(allowedLocalPorts)} }}\n");
        }
    }

    private static string Join(IEnumerable<int> ports) => string.Join(", ", ports.Distinct().Select(p => p.ToString(CultureInfo.InvariantCulture)));

    private static string? Nft() => Processes.ProcessLauncher.ResolveOnPath("nft", "/usr/sbin:/sbin:/usr/bin:/bin");

    private static string? RunScript(string nft, string script)
    {
        var file = Path.Combine(Path.GetTempPath(), $"connect-nft-{Guid.NewGuid():N}.nft");
        try
        {
            File.WriteAllText(file, script);
            var code = RunAsUser.RunExitCode(nft, "-f", file);
            return code == 0 ? null : $"nft -f failed (exit {code}): the kernel may lack nf_tables, or the server lacks CAP_NET_ADMIN";
        }
        finally
        {
            File.Delete(file);
        }
    }
}
