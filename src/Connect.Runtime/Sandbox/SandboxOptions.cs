namespace Connect.Runtime.Sandbox;

public enum SandboxMode
{
    /// <summary>
    /// Sandbox content with whatever protections this host offers. Without a working bubblewrap (or, when the server
    /// is root, without the run-as user) the server starts but runs no content, and says why.
    /// </summary>
    Auto,
    /// <summary>Refuse to start unless every protection holds: bubblewrap, run-as user, network guard, resource limits.</summary>
    Required,
    /// <summary>Never sandbox (development only): content runs as the server's user and can read everything it can.</summary>
    Disabled,
}

/// <summary>How content processes are confined, config section "Sandbox".</summary>
public sealed class SandboxOptions
{
    /// <summary>Auto, Required or Disabled. Default Auto.</summary>
    public SandboxMode Mode { get; set; } = SandboxMode.Auto;

    /// <summary>The bubblewrap executable. Default /usr/bin/bwrap.</summary>
    public string Bubblewrap { get; set; } = "/usr/bin/bwrap";

    /// <summary>util-linux setpriv, which drops to the run-as user. Default /usr/bin/setpriv.</summary>
    public string Setpriv { get; set; } = "/usr/bin/setpriv";

    /// <summary>
    /// Whether content is kept off this host's own listeners (silo, Kestrel, databases on loopback) by an nftables
    /// rule on the run-as user's uid. Default true; needs root and nftables.
    /// </summary>
    public bool BlockHostNetwork { get; set; } = true;

    /// <summary>TCP ports on this host that content may still reach (e.g. a local database). Default none.</summary>
    public List<int> AllowedHostPorts { get; set; } = [];

    /// <summary>More host directories to hide from content when they sit under a system directory (e.g. /etc/connect).</summary>
    public List<string> HiddenPaths { get; set; } = ["/etc/connect", "/etc/rstudio-connect"];

    public bool Available => File.Exists(Bubblewrap);

    public bool Active => Mode != SandboxMode.Disabled;

    public IEnumerable<string> Validate()
    {
        if (Mode == SandboxMode.Required && !Available)
        {
            yield return $"Sandbox:Mode is Required but '{Bubblewrap}' does not exist (install bubblewrap).";
        }
        foreach (var port in AllowedHostPorts.Where(p => p is < 1 or > 65535))
        {
            yield return $"Sandbox:AllowedHostPorts: {port} is not a TCP port.";
        }
    }
}
