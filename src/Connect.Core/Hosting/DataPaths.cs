namespace Connect.Core.Hosting;

/// <summary>
/// The layout of the data directory. In cluster mode the same layout sits on shared storage, so every path
/// a node writes is keyed by content GUID and bundle id and can be computed by any node.
/// </summary>
public sealed class DataPaths(string root)
{
    public string Root { get; } = Path.GetFullPath(root);

    public string DatabaseFile => Path.Combine(Root, "db", "connect.db");
    public string SecretKeyFile => Path.Combine(Root, "db", "secret.key");
    public string Uploads => Path.Combine(Root, "tmp", "uploads");
    public string PythonEnvironments => Path.Combine(Root, "python", "envs");
    public string Launchers => Path.Combine(Root, "runtime", "launchers");

    public string BundleArchive(Guid content, long bundleId) => Path.Combine(Root, "bundles", content.ToString("D"), $"{bundleId}.tar.gz");
    public string ContentBundles(Guid content) => Path.Combine(Root, "bundles", content.ToString("D"));
    public string ContentApps(Guid content) => Path.Combine(Root, "apps", content.ToString("D"));
    /// <summary>Where a bundle is unpacked; never written to after extraction.</summary>
    public string BundleDirectory(Guid content, long bundleId) => Path.Combine(ContentApps(content), bundleId.ToString(System.Globalization.CultureInfo.InvariantCulture));
    /// <summary>How to run a deployed bundle: written last by a successful deploy.</summary>
    public string LaunchPlan(Guid content, long bundleId) => BundleDirectory(content, bundleId) + ".plan.json";
    /// <summary>Rendered output (notebooks, reports) of a bundle.</summary>
    public string OutputDirectory(Guid content, long bundleId) => BundleDirectory(content, bundleId) + ".output";
    public string ContentLogs(Guid content) => Path.Combine(Root, "logs", content.ToString("D"));
    public string JobLog(Guid content, string jobKey) => Path.Combine(ContentLogs(content), jobKey + ".log");

    public void EnsureCreated()
    {
        foreach (var dir in new[] { Path.GetDirectoryName(DatabaseFile)!, Uploads, PythonEnvironments, Launchers, Path.Combine(Root, "bundles"), Path.Combine(Root, "apps"), Path.Combine(Root, "logs") })
        {
            Directory.CreateDirectory(dir);
        }
    }
}
