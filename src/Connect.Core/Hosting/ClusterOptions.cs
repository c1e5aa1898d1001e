namespace Connect.Core.Hosting;

/// <summary>
/// How this node takes part in a cluster, config section "Cluster". Every default suits a single node: set
/// <c>Storage:Provider=postgres</c> and a shared <c>Connect:DataDir</c> to run several.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>This node's stable name in jobs, tasks, logs and the node registry. Default "{host name}-{silo port}".</summary>
    public string? NodeName { get; set; }

    /// <summary>
    /// Node-local scratch (process sockets): never on shared storage, since a Unix socket only works on the node that
    /// made it. Default "{data dir}/run" on a single node; "{temp}/connect-{node name}" in cluster mode.
    /// </summary>
    public string? ScratchDir { get; set; }

    /// <summary>
    /// How other nodes reach this node's front end for a process that runs here (the internal hop), e.g.
    /// http://10.0.3.17:3939. Default: the address Kestrel listens on (0.0.0.0 becomes the advertised address).
    /// </summary>
    public string? InternalUrl { get; set; }

    /// <summary>
    /// Base64 of at least 32 bytes shared by every node: it authenticates the internal hop and signs session pins.
    /// Default: a key file created once on the shared data directory (db/cluster.key).
    /// </summary>
    public string? Secret { get; set; }

    /// <summary>On SIGTERM, how long existing sessions may go on before this node's processes stop. Default 30 s (0 to 3600).</summary>
    public int DrainSeconds { get; set; } = 30;

    /// <summary>How often this node publishes its load and liveness to the node registry, in milliseconds. Default 1000.</summary>
    public int HeartbeatMilliseconds { get; set; } = 1000;

    /// <summary>Failure detection: the probe timeout in seconds (Orleans' ClusterMembershipOptions.ProbeTimeout). Default 1.</summary>
    public double ProbeTimeoutSeconds { get; set; } = 1;

    /// <summary>Failure detection: missed probes before a silo is suspected (NumMissedProbesLimit). Default 2.</summary>
    public int MissedProbesLimit { get; set; } = 2;

    public IEnumerable<string> Validate()
    {
        if (NodeName is not null && (NodeName.Length is 0 or > 63 || !NodeName.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
            yield return "Cluster:NodeName must be 1-63 letters, digits, '-', '_' or '.'.";
        if (InternalUrl is not null && !(Uri.TryCreate(InternalUrl, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"))
            yield return $"Cluster:InternalUrl '{InternalUrl}' is not an absolute http(s) URL.";
        if (Secret is not null)
        {
            byte[]? key = null;
            try { key = Convert.FromBase64String(Secret); } catch (FormatException) { }
            if (key is not { Length: >= 32 }) yield return "Cluster:Secret must be base64 of at least 32 bytes.";
        }
        if (DrainSeconds is < 0 or > 3600) yield return "Cluster:DrainSeconds must be between 0 and 3600.";
        if (HeartbeatMilliseconds is < 100 or > 60_000) yield return "Cluster:HeartbeatMilliseconds must be between 100 and 60000.";
        if (ProbeTimeoutSeconds is < 0.2 or > 60) yield return "Cluster:ProbeTimeoutSeconds must be between 0.2 and 60.";
        if (MissedProbesLimit is < 1 or > 10) yield return "Cluster:MissedProbesLimit must be between 1 and 10.";
    }
}
