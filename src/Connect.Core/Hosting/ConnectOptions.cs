namespace Connect.Core.Hosting;

/// <summary>Server-wide settings, config section "Connect" (env vars <c>Connect__Name</c>).</summary>
public sealed class ConnectOptions
{
    /// <summary>Where the catalog, bundles, environments and logs live. Default "./data" under the working directory.</summary>
    public string DataDir { get; set; } = "data";

    /// <summary>
    /// The public URL viewers and publishers use (e.g. https://connect.example.com). It builds content_url,
    /// dashboard_url and CONNECT_SERVER. Default: derived from each request's scheme and host.
    /// </summary>
    public string? ServerUrl { get; set; }

    /// <summary>Largest bundle upload accepted, in bytes. Default 2 GiB.</summary>
    public long MaxBundleBytes { get; set; } = 2L * 1024 * 1024 * 1024;

    /// <summary>
    /// Largest JSON request body the API reads, in bytes (413 beyond). Default 1 MiB: real requests are a few
    /// kilobytes. Bundle uploads are not JSON and are capped by <see cref="MaxBundleBytes"/> instead.
    /// </summary>
    public long MaxJsonBodyBytes { get; set; } = 1024 * 1024;

    /// <summary>Largest total size of an unpacked bundle, in bytes. Default 4 GiB.</summary>
    public long MaxExtractedBytes { get; set; } = 4L * 1024 * 1024 * 1024;

    /// <summary>Most files an unpacked bundle may hold. Default 100000.</summary>
    public int MaxBundleFiles { get; set; } = 100_000;

    /// <summary>Longest a deploy task's build steps may run, in seconds. Default 1800.</summary>
    public int DeployTimeoutSeconds { get; set; } = 1800;

    /// <summary>
    /// Whether content processes get CONNECT_API_KEY, a key acting as the item's owner for the process's
    /// lifetime (posit-sdk's Client() reads it). Default true, as in Posit Connect.
    /// </summary>
    public bool ProcessApiKeys { get; set; } = true;

    /// <summary>
    /// Base64 of the 32-byte key that encrypts environment variables. Default: a key file created in the
    /// data directory on first start. Cluster nodes must share it (shared data directory or this setting).
    /// </summary>
    public string? SecretKey { get; set; }

    /// <summary>
    /// How long, in seconds, this node trusts a validated API key without asking the catalog again: the longest a
    /// key deleted (or a user locked) on ANOTHER node still works here if the cluster broadcast of that change is lost
    /// (it normally arrives within milliseconds). Changes made on this node apply at once.
    /// Default 10; 0 disables the cache; at most 300.
    /// </summary>
    public int ApiKeyCacheSeconds { get; set; } = 10;

    /// <summary>
    /// How often, in seconds, the last-used times of API keys are written to the catalog, in one batch, instead
    /// of a write per request. Default 30; 1 to 3600.
    /// </summary>
    public int ApiKeyLastUsedFlushSeconds { get; set; } = 30;

    public IEnumerable<string> Validate()
    {
        if (ApiKeyCacheSeconds is < 0 or > 300) yield return "Connect:ApiKeyCacheSeconds must be between 0 (no cache) and 300.";
        if (ApiKeyLastUsedFlushSeconds is < 1 or > 3600) yield return "Connect:ApiKeyLastUsedFlushSeconds must be between 1 and 3600.";
        if (string.IsNullOrWhiteSpace(DataDir)) yield return "Connect:DataDir must be set.";
        if (ServerUrl is not null && !(Uri.TryCreate(ServerUrl, UriKind.Absolute, out var u) && u.Scheme is "http" or "https"))
            yield return $"Connect:ServerUrl '{ServerUrl}' is not an absolute http(s) URL.";
        if (MaxBundleBytes < 1024) yield return "Connect:MaxBundleBytes must be at least 1024.";
        if (MaxJsonBodyBytes < 1024) yield return "Connect:MaxJsonBodyBytes must be at least 1024.";
        if (MaxExtractedBytes < 1024) yield return "Connect:MaxExtractedBytes must be at least 1024.";
        if (MaxBundleFiles < 1) yield return "Connect:MaxBundleFiles must be at least 1.";
        if (DeployTimeoutSeconds < 1) yield return "Connect:DeployTimeoutSeconds must be at least 1.";
        if (SecretKey is not null)
        {
            byte[]? key = null;
            try { key = Convert.FromBase64String(SecretKey); } catch (FormatException) { }
            if (key is not { Length: 32 }) yield return "Connect:SecretKey must be base64 of exactly 32 bytes.";
        }
    }
}

/// <summary>The first-administrator bootstrap (rsconnect bootstrap), config section "Bootstrap".</summary>
public sealed class BootstrapOptions
{
    /// <summary>
    /// A file holding the base64 secret that signs bootstrap tokens. Default: none; the env var
    /// CONNECT_BOOTSTRAP_SECRETKEY is read instead. With neither, bootstrap is disabled.
    /// </summary>
    public string? SecretKeyFile { get; set; }

    /// <summary>Whether the bootstrap endpoint is enabled at all. Default true.</summary>
    public bool Enabled { get; set; } = true;

    public IEnumerable<string> Validate()
    {
        if (SecretKeyFile is not null && !File.Exists(SecretKeyFile))
            yield return $"Bootstrap:SecretKeyFile '{SecretKeyFile}' does not exist.";
    }
}
