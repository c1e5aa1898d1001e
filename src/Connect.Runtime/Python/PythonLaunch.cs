using System.Globalization;
using Connect.Runtime.Processes;

namespace Connect.Runtime.Python;

/// <summary>Launch specs for Python web content, served through the embedded connect_launcher.py.</summary>
public static class PythonLaunch
{
    public const string LauncherFileName = "connect_launcher.py";
    private const string ResourceName = "Connect.Runtime.Python.connect_launcher.py";

    private static readonly Lazy<byte[]> LauncherBytes = new(ReadLauncher);

    /// <summary>Serve a WSGI application (Flask, Django, ...) with werkzeug's threaded server, or wsgiref without it.</summary>
    public static LaunchSpec ForWsgi(
        PythonEnvironment env, string bundleDirectory, string entrypoint, int port, string rootPath,
        IReadOnlyDictionary<string, string> environment, string launcherDirectory) =>
        For("wsgi", env, bundleDirectory, entrypoint, ListenAddress.Tcp(port), rootPath, environment, launcherDirectory);

    /// <summary>Serve a WSGI application on <paramref name="listen"/> (a Unix socket, seen at <paramref name="socketInSandbox"/> by the app).</summary>
    public static LaunchSpec ForWsgi(
        PythonEnvironment env, string bundleDirectory, string entrypoint, ListenAddress listen, string rootPath,
        IReadOnlyDictionary<string, string> environment, string launcherDirectory, string? socketInSandbox = null) =>
        For("wsgi", env, bundleDirectory, entrypoint, listen, rootPath, environment, launcherDirectory, socketInSandbox);

    /// <summary>Serve an ASGI application (FastAPI, Starlette, ...) with uvicorn, which must be installed in the environment.</summary>
    public static LaunchSpec ForAsgi(
        PythonEnvironment env, string bundleDirectory, string entrypoint, int port, string rootPath,
        IReadOnlyDictionary<string, string> environment, string launcherDirectory) =>
        For("asgi", env, bundleDirectory, entrypoint, ListenAddress.Tcp(port), rootPath, environment, launcherDirectory);

    /// <summary>Serve an ASGI application on <paramref name="listen"/> (a Unix socket, seen at <paramref name="socketInSandbox"/> by the app).</summary>
    public static LaunchSpec ForAsgi(
        PythonEnvironment env, string bundleDirectory, string entrypoint, ListenAddress listen, string rootPath,
        IReadOnlyDictionary<string, string> environment, string launcherDirectory, string? socketInSandbox = null) =>
        For("asgi", env, bundleDirectory, entrypoint, listen, rootPath, environment, launcherDirectory, socketInSandbox);

    /// <summary>Writes the launcher into <paramref name="launcherDirectory"/> unless an identical copy is there; returns its path.</summary>
    public static string EnsureLauncher(string launcherDirectory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(launcherDirectory);
        Directory.CreateDirectory(launcherDirectory);
        var path = Path.Combine(launcherDirectory, LauncherFileName);
        var bytes = LauncherBytes.Value;
        if (File.Exists(path) && File.ReadAllBytes(path).AsSpan().SequenceEqual(bytes))
        {
            return path;
        }

        // Write-then-rename so a process starting concurrently never sees a half-written launcher.
        var temporary = Path.Combine(launcherDirectory, $".{LauncherFileName}.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(temporary, bytes);
        File.Move(temporary, path, overwrite: true);
        return path;
    }

    /// <summary>Variables that make a process run inside <paramref name="env"/> as if it had been activated.</summary>
    internal static Dictionary<string, string> EnvironmentFor(PythonEnvironment env)
    {
        var basePath = ProcessLauncher.BaseEnvironment()["PATH"];
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = Path.Combine(env.Directory, "bin") + ":" + basePath,
            ["VIRTUAL_ENV"] = env.Directory,
            ["PYTHONUNBUFFERED"] = "1",
            // A venv with system site packages would otherwise also see ~/.local of the server's user.
            ["PYTHONNOUSERSITE"] = "1",
        };
    }

    private static LaunchSpec For(
        string kind, PythonEnvironment env, string bundleDirectory, string entrypoint, ListenAddress listen, string rootPath,
        IReadOnlyDictionary<string, string> environment, string launcherDirectory, string? socketInSandbox = null)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentException.ThrowIfNullOrWhiteSpace(bundleDirectory);
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(listen);
        var launcher = EnsureLauncher(launcherDirectory);
        var bundle = Path.GetFullPath(bundleDirectory);
        var variables = EnvironmentFor(env);
        foreach (var (key, value) in environment)
        {
            variables[key] = value;
        }

        variables["PYTHONUNBUFFERED"] = "1";
        string[] arguments =
        [
            launcher,
            "--kind", kind,
            "--entrypoint", string.IsNullOrWhiteSpace(entrypoint) ? "app" : entrypoint,
            .. (listen.SocketPath is { } socket
                ? new[] { "--socket", socketInSandbox ?? socket }
                : ["--port", listen.Port.ToString(CultureInfo.InvariantCulture)]),
            "--root-path", rootPath ?? "",
            "--bundle", bundle,
        ];
        return new LaunchSpec(env.PythonPath, arguments, bundle, variables);
    }

    private static byte[] ReadLauncher()
    {
        using var stream = typeof(PythonLaunch).Assembly.GetManifestResourceStream(ResourceName)
            ?? throw new InvalidOperationException($"Embedded resource {ResourceName} is missing from Connect.Runtime.");
        using var copy = new MemoryStream();
        stream.CopyTo(copy);
        return copy.ToArray();
    }
}
