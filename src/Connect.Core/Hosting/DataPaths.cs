namespace Connect.Core.Hosting;

/// <summary>
/// The layout of the data directory. In cluster mode the same layout sits on shared storage, so every path
/// a node writes is keyed by content GUID and bundle id and can be computed by any node.
/// </summary>
public sealed class DataPaths(string root, string? scratch = null)
{
    public string Root { get; } = Path.GetFullPath(root);

    /// <summary>Node-local scratch (process sockets); the data directory itself on a single node.</summary>
    public string Scratch { get; } = Path.GetFullPath(scratch ?? root);

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
    /// <summary>Node-local: one directory per running process holding its Unix socket, seen only by it and the front end.</summary>
    public string Sockets => Path.Combine(Scratch, "run");
    public string ProcessSocketDirectory(string jobKey) => Path.Combine(Sockets, jobKey);
    /// <summary>The one directory a content item's processes may write, kept across restarts.</summary>
    public string ContentWork(Guid content) => Path.Combine(Root, "work", content.ToString("D"));
    public string ContentLogs(Guid content) => Path.Combine(Root, "logs", content.ToString("D"));
    public string JobLog(Guid content, string jobKey) => Path.Combine(ContentLogs(content), jobKey + ".log");

    /// <summary>
    /// Creates the layout with modes that keep content out: the catalog, keys, uploads, archives and logs are the
    /// server's alone (0700); content's run-as user may only pass through the root (0711) to the bundles, environments
    /// and launcher its sandbox mounts.
    /// </summary>
    public void EnsureCreated()
    {
        const UnixFileMode Private = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;
        const UnixFileMode PassThrough = Private | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
        const UnixFileMode Readable = PassThrough | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
        var layout = new (string Path, UnixFileMode Mode)[]
        {
            (Root, PassThrough),
            (Path.GetDirectoryName(DatabaseFile)!, Private),
            (Path.Combine(Root, "tmp"), Private),
            (Uploads, Private),
            (Path.Combine(Root, "bundles"), Private),
            (Path.Combine(Root, "logs"), Private),
            (Path.Combine(Root, "apps"), PassThrough),
            (Path.Combine(Root, "python"), PassThrough),
            (PythonEnvironments, Readable),
            (Path.Combine(Root, "runtime"), PassThrough),
            (Launchers, Readable),
            (Scratch, PassThrough),
            (Sockets, PassThrough),
            (Path.Combine(Root, "work"), PassThrough),
        };
        foreach (var (dir, mode) in layout)
        {
            Directory.CreateDirectory(dir);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(dir, mode);
            }
        }
    }
}
