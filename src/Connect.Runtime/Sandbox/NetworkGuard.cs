using System.Globalization;
using System.Text;

namespace Connect.Runtime.Sandbox;

/// <summary>
/// Keeps content off this host's own services. Content shares the host's network namespace so that its outbound
/// connections (databases, APIs) work, and therefore could reach every loopback listener: the Orleans silo (which
/// takes unauthenticated grain calls), Kestrel, other content, a local database. An nftables rule keyed on the
/// run-as user's uid rejects any connection from content to an address of this host, and to the silo ports of other
/// nodes; DNS to a local resolver stays allowed. Content reaches its own front end through a Unix socket, which the
/// rule does not touch.
/// </summary>
public static class NetworkGuard
{
    public static string TableName(int siloPort) => $"connect_sandbox_{siloPort.ToString(CultureInfo.InvariantCulture)}";

    /// <summary>The nft script that (re)creates this node's table; applying it twice leaves one copy.</summary>
    public static string Script(int uid, int siloPort, IReadOnlyCollection<int> blockedRemotePorts, IReadOnlyCollection<int> allowedLocalPorts)
    {
        var table = TableName(siloPort);
        var u = uid.ToString(CultureInfo.InvariantCulture);
        var script = new StringBuilder()
            .Append("table inet ").Append(table).Append('\n')
            .Append("delete table inet ").Append(table).Append('\n')
            .Append("table inet ").Append(table).Append(" {\n")
            .Append("  chain output {\n")
            .Append("    type filter hook output priority 0; policy accept;\n")
            .Append("    meta skuid ").Append(u).Append(" fib daddr type local udp dport 53 accept\n")
            .Append("    meta skuid ").Append(u).Append(" fib daddr type local tcp dport 53 accept\n");
        if (allowedLocalPorts.Count > 0)
        {
            script.Append("    meta skuid ").Append(u).Append(" fib daddr type local tcp dport { ")
                .Append(string.Join(", ", allowedLocalPorts.Select(p => p.ToString(CultureInfo.InvariantCulture)))).Append(" } accept\n");
        }
        script.Append("    meta skuid ").Append(u).Append(" fib daddr type local reject\n");
        if (blockedRemotePorts.Count > 0)
        {
            script.Append("    meta skuid ").Append(u).Append(" tcp dport { ")
                .Append(string.Join(", ", blockedRemotePorts.Select(p => p.ToString(CultureInfo.InvariantCulture)))).Append(" } reject\n");
        }
        return script.Append("  }\n}\n").ToString();
    }

    /// <summary>Installs the rule with nft; returns null on success, else why it could not.</summary>
    public static string? Apply(int uid, int siloPort, IReadOnlyCollection<int> blockedRemotePorts, IReadOnlyCollection<int> allowedLocalPorts)
    {
        var nft = Processes.ProcessLauncher.ResolveOnPath("nft", "/usr/sbin:/sbin:/usr/bin:/bin");
        if (nft is null)
        {
            return "nft (nftables) is not installed";
        }
        var file = Path.Combine(Path.GetTempPath(), $"connect-nft-{Guid.NewGuid():N}.nft");
        try
        {
            File.WriteAllText(file, Script(uid, siloPort, blockedRemotePorts, allowedLocalPorts));
            var code = RunAsUser.RunExitCode(nft, "-f", file);
            return code == 0 ? null : $"nft -f failed (exit {code}): the kernel may lack nf_tables, or the server lacks CAP_NET_ADMIN";
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>Removes this node's table (graceful shutdown).</summary>
    public static void Remove(int siloPort)
    {
        if (Processes.ProcessLauncher.ResolveOnPath("nft", "/usr/sbin:/sbin:/usr/bin:/bin") is { } nft)
        {
            RunAsUser.RunExitCode(nft, "delete", "table", "inet", TableName(siloPort));
        }
    }
}
