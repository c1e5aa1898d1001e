using Connect.Core.Hosting;
using Connect.Data;
using Connect.Core.Model;
using Connect.Runtime.Python;
using Connect.Runtime.Sandbox;
using BootstrapSecret = Connect.Api.Users.BootstrapSecret;

namespace Connect.Server;

/// <summary>Every area's options, bound and validated together so that all problems are reported at once.</summary>
public sealed record ConnectConfiguration(
    ConnectOptions Connect,
    SchedulerDefaults Scheduler,
    PythonOptions Python,
    BootstrapOptions Bootstrap,
    OrleansOptions Orleans,
    SandboxOptions Sandbox,
    ApplicationsOptions Applications,
    StorageOptions Storage,
    ClusterOptions Cluster)
{
    public static ConnectConfiguration Bind(IConfiguration configuration)
    {
        T Section<T>(string name) where T : new()
        {
            var value = new T();
            configuration.GetSection(name).Bind(value);
            return value;
        }
        return new(Section<ConnectOptions>("Connect"), Section<SchedulerDefaults>("Scheduler"), Section<PythonOptions>("Python"),
            Section<BootstrapOptions>("Bootstrap"), Section<OrleansOptions>("Orleans"), Section<SandboxOptions>("Sandbox"),
            Section<ApplicationsOptions>("Applications"), Section<StorageOptions>("Storage"), Section<ClusterOptions>("Cluster"));
    }

    public IReadOnlyList<string> Validate() =>
        [.. Connect.Validate(), .. Scheduler.Validate(), .. Python.Validate(), .. Bootstrap.Validate(), .. Orleans.Validate(), .. Sandbox.Validate(), .. Applications.Validate(), .. Storage.Validate(), .. Cluster.Validate(), .. CrossChecks()];

    /// <summary>Several nodes share the catalog and the data directory.</summary>
    public bool IsCluster => Storage.IsPostgres;

    /// <summary>This node's name: configured, or host name and silo port (unique per host, stable across restarts).</summary>
    public string NodeName => Cluster.NodeName ?? $"{Environment.MachineName}-{Orleans.SiloPort.ToString(System.Globalization.CultureInfo.InvariantCulture)}";

    /// <summary>Node-local scratch: configured; the data directory on a single node; a temporary directory per node in a cluster.</summary>
    public string ScratchDirectory => Cluster.ScratchDir ?? (IsCluster ? Path.Combine(Path.GetTempPath(), "connect-" + NodeName) : Connect.DataDir);

    private IEnumerable<string> CrossChecks()
    {
        // A process start is one grain call that lasts up to init_timeout; it must end before the call times out.
        if (Scheduler.MaxInitTimeout + 30 > Orleans.ResponseTimeoutSeconds)
            yield return "Orleans:ResponseTimeoutSeconds must exceed Scheduler:MaxInitTimeout by at least 30 s.";
        // A secret that is set but unusable would silently disable bootstrap: say so at start instead.
        var configured = Bootstrap.SecretKeyFile is not null || !string.IsNullOrWhiteSpace(Environment.GetEnvironmentVariable(BootstrapSecret.EnvironmentVariable));
        if (Bootstrap.Enabled && configured && !Bootstrap.Validate().Any() && BootstrapSecret.Read(Bootstrap) is null)
            yield return $"The bootstrap secret (Bootstrap:SecretKeyFile or {BootstrapSecret.EnvironmentVariable}) must be base64 of at least 32 bytes.";
    }
}

/// <summary>Cluster settings, config section "Orleans". Single-node defaults need nothing set.</summary>
public sealed class OrleansOptions
{
    /// <summary>Silo-to-silo port. Default 11111.</summary>
    public int SiloPort { get; set; } = 11111;

    /// <summary>Identifies the deployment: grain state and reminders are keyed by it. Default "connect".</summary>
    public string ServiceId { get; set; } = "connect";

    /// <summary>Identifies one cluster of silos. Default "connect".</summary>
    public string ClusterId { get; set; } = "connect";

    /// <summary>
    /// The address other silos reach this one at. Default: 127.0.0.1 on a single node; in cluster mode the host's
    /// first non-loopback IPv4 address (set it to the pod IP in Kubernetes).
    /// </summary>
    public string? AdvertisedAddress { get; set; }

    /// <summary>Longest a grain call may take; covers a process start up to its init_timeout. Default 300 s.</summary>
    public int ResponseTimeoutSeconds { get; set; } = 300;

    /// <summary>How long an unused grain activation is kept before it is collected. Default 900 s (Orleans' own default).</summary>
    public int CollectionAgeSeconds { get; set; } = 900;

    public IEnumerable<string> Validate()
    {
        if (CollectionAgeSeconds < 2) yield return "Orleans:CollectionAgeSeconds must be at least 2.";
        if (SiloPort is < 1 or > 65535) yield return "Orleans:SiloPort must be a TCP port (1-65535).";
        if (string.IsNullOrWhiteSpace(ServiceId)) yield return "Orleans:ServiceId must be set.";
        if (string.IsNullOrWhiteSpace(ClusterId)) yield return "Orleans:ClusterId must be set.";
        if (ResponseTimeoutSeconds < 10) yield return "Orleans:ResponseTimeoutSeconds must be at least 10.";
        if (AdvertisedAddress is not null && !System.Net.IPAddress.TryParse(AdvertisedAddress, out _))
            yield return $"Orleans:AdvertisedAddress '{AdvertisedAddress}' is not an IP address.";
    }
}

public sealed class ConfigurationProblemsException(IReadOnlyList<string> problems)
    : Exception("invalid configuration: " + string.Join("; ", problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
