namespace Connect.Deploy.Tests;

/// <summary>
/// What a node accepts and serves in cluster mode, as deployment assets rely on it: the configuration keys (as
/// environment variables, "__" for ":") and the health endpoints. The server implements it; these tests hold the
/// chart, the image and the local cluster script to it.
/// </summary>
public static class ConfigContract
{
    public const string LivePath = "/__health__/live";
    public const string ReadyPath = "/__health__/ready";
    public const string PingPath = "/__ping__";

    /// <summary>Settings every cluster node needs.</summary>
    public static readonly IReadOnlySet<string> Required = new HashSet<string>(StringComparer.Ordinal)
    {
        "ASPNETCORE_URLS",
        "Storage__Provider",
        "Storage__ConnectionString",
        "Connect__DataDir",
        "Cluster__NodeName",
        "Cluster__ScratchDir",
        "Cluster__InternalUrl",
        "Orleans__SiloPort",
        "Orleans__AdvertisedAddress",
    };

    /// <summary>Settings a deployment may give as well.</summary>
    public static readonly IReadOnlySet<string> Optional = new HashSet<string>(StringComparer.Ordinal)
    {
        "Cluster__Secret",
        "Cluster__DrainSeconds",
        "Orleans__ClusterId",
        "Orleans__ServiceId",
        "Connect__ServerUrl",
        "CONNECT_BOOTSTRAP_SECRETKEY",
        "Sandbox__Mode",
    };

    public static bool Known(string name) => Required.Contains(name) || Optional.Contains(name);
}
