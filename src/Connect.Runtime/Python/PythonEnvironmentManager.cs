using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Connect.Runtime.Processes;
using Connect.Runtime.Sandbox;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Python;

/// <summary>
/// Virtual environments shared by all content with the same interpreter and requirements. Each lives in
/// <c>environmentsRoot/&lt;hash prefix&gt;</c> and counts as ready only once its marker file exists, which is written last.
/// </summary>
public sealed class PythonEnvironmentManager
{
    internal const string ReadyMarker = ".connect-ready";
    private const int HashPrefixLength = 16;
    private const int OutputTailLines = 60;

    // Process-wide, so several managers over the same root still build a given environment once.
    private static readonly ConcurrentDictionary<string, SemaphoreSlim> Gates = new(StringComparer.Ordinal);
    private static readonly TimeSpan FileLockPollInterval = TimeSpan.FromMilliseconds(200);

    private readonly string _root;
    private readonly PythonOptions _options;
    private readonly ILogger<PythonEnvironmentManager> _logger;
    private readonly TimeProvider _time;

    private readonly ContentSandbox? _sandbox;

    /// <param name="sandbox">Where builds run: pip executes the bundle's setup code, so it runs as content does. Null: unsandboxed (tests of the build logic).</param>
    public PythonEnvironmentManager(
        string environmentsRoot, PythonOptions options, ILogger<PythonEnvironmentManager> logger, TimeProvider? time = null, ContentSandbox? sandbox = null)
    {
        _sandbox = sandbox;
        ArgumentException.ThrowIfNullOrWhiteSpace(environmentsRoot);
        _root = Path.GetFullPath(environmentsRoot);
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
        _time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// The environment for <paramref name="python"/> plus the requirements file (missing or empty: no packages beyond the
    /// host's), building it when it does not exist yet. Build output is streamed to <paramref name="log"/>.
    /// </summary>
    public async Task<PythonEnvironment> EnsureAsync(
        PythonInstallation python, string? requirementsFile, Action<string> log, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(python);
        ArgumentNullException.ThrowIfNull(log);
        var requirements = await ReadRequirementsAsync(requirementsFile, ct).ConfigureAwait(false);
        // A requirement naming a local path (".", "./pkg", "-e .", "file:…", "-r other.txt") installs whatever that path
        // holds in this bundle: such an environment is this bundle's own, never shared by text alone.
        var hash = ComputeHash(python, requirements, ReferencesLocalFiles(requirements) ? Path.GetFullPath(requirementsFile!) : null);
        return await EnsureBuiltAsync(python, hash, requirementsFile, requirements.Count > 0, log, ct).ConfigureAwait(false);
    }

    private async Task<PythonEnvironment> EnsureBuiltAsync(
        PythonInstallation python, string hash, string? requirementsFile, bool install, Action<string> log, CancellationToken ct)
    {
        var directory = Path.Combine(_root, hash[..HashPrefixLength]);
        var environment = new PythonEnvironment(directory, Path.Combine(directory, "bin", "python"), hash);

        var gate = Gates.GetOrAdd(directory, _ => new SemaphoreSlim(1, 1));
        await gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            if (IsReady(environment))
            {
                log($"Using existing Python {python.Version} environment {directory}");
                return environment;
            }

            Directory.CreateDirectory(_root);
            // The file lock covers other server processes sharing this directory (several nodes on one host).
            await using var fileLock = (await AcquireFileLockAsync(directory + ".lock", ct).ConfigureAwait(false)).ConfigureAwait(false);
            if (IsReady(environment))
            {
                log($"Using existing Python {python.Version} environment {directory}");
                return environment;
            }

            await BuildAsync(python, requirementsFile, install, environment, log, ct).ConfigureAwait(false);
            return environment;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// The environment for content whose Python environment is not managed: an empty venv over the interpreter's own
    /// packages (--system-site-packages, no pip), so launch, sandbox and renderer see the same layout as a managed one
    /// while nothing is ever installed. Keyed apart from the managed environment with no requirements, which may one
    /// day be built differently (e.g. seeded with pip); the two must never be mistaken for each other.
    /// </summary>
    public async Task<PythonEnvironment> EnsureUnmanagedAsync(PythonInstallation python, Action<string> log, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(python);
        ArgumentNullException.ThrowIfNull(log);
        var hash = ComputeHash(python, [], unmanaged: true);
        return await EnsureBuiltAsync(python, hash, requirementsFile: null, install: false, log, ct).ConfigureAwait(false);
    }

    /// <summary>Requirement lines without comments, blank lines and surrounding space, sorted so order does not matter.</summary>
    internal static async Task<IReadOnlyList<string>> ReadRequirementsAsync(string? path, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(path) || !File.Exists(path))
        {
            return [];
        }

        var lines = await File.ReadAllLinesAsync(path, ct).ConfigureAwait(false);
        return lines
            .Select(StripComment)
            .Select(l => l.Trim())
            .Where(l => l.Length > 0)
            .Order(StringComparer.Ordinal)
            .ToList();
    }

    internal static bool ReferencesLocalFiles(IReadOnlyList<string> requirements) =>
        requirements.Any(l => l.StartsWith('.') || l.StartsWith('/') || l.StartsWith('-') || l.Contains("file:", StringComparison.OrdinalIgnoreCase)
            || l.Contains(" @ ", StringComparison.Ordinal));

    internal static string ComputeHash(PythonInstallation python, IReadOnlyList<string> requirements, string? ownRequirementsFile = null, bool unmanaged = false)
    {
        var text = new StringBuilder()
            .Append("connect-python-env-v1\n")
            .Append(unmanaged ? "unmanaged\n" : "")
            .Append(ownRequirementsFile is null ? "" : "own:" + ownRequirementsFile + "\n")
            .Append(python.Path).Append('\n')
            .Append(python.Version).Append('\n');
        foreach (var line in requirements)
        {
            text.Append(line).Append('\n');
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    private static string StripComment(string line)
    {
        // pip's rule: '#' starts a comment at the line start or after whitespace (a URL fragment like #egg= is not one).
        for (var i = 0; i < line.Length; i++)
        {
            if (line[i] == '#' && (i == 0 || char.IsWhiteSpace(line[i - 1])))
            {
                return line[..i];
            }
        }

        return line;
    }

    private static bool IsReady(PythonEnvironment environment)
    {
        var marker = Path.Combine(environment.Directory, ReadyMarker);
        try
        {
            return File.Exists(marker)
                && File.Exists(environment.PythonPath)
                && string.Equals(File.ReadAllText(marker).Trim(), environment.Hash, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
    }

    private async Task<FileStream> AcquireFileLockAsync(string path, CancellationToken ct)
    {
        while (true)
        {
            try
            {
                // FileShare.None takes an exclusive flock on Unix, which another process holding it makes fail at once.
                return new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
            catch (IOException)
            {
                await Task.Delay(FileLockPollInterval, _time, ct).ConfigureAwait(false);
            }
        }
    }

    private async Task BuildAsync(
        PythonInstallation python, string? requirementsFile, bool install, PythonEnvironment environment,
        Action<string> log, CancellationToken ct)
    {
        var directory = environment.Directory;
        if (Directory.Exists(directory))
        {
            RuntimeLog.RemovingIncompleteEnvironment(_logger, directory);
            log($"Removing incomplete environment {directory}");
            Directory.Delete(directory, recursive: true);
        }

        RuntimeLog.BuildingEnvironment(_logger, directory, python.Path);
        var timeout = TimeSpan.FromSeconds(_options.InstallTimeoutSeconds);
        var started = _time.GetTimestamp();
        var tail = new LogRing(OutputTailLines);
        void Capture(string line)
        {
            tail.Add(line);
            log(line);
        }

        try
        {
            log($"Creating Python {python.Version} environment {directory}");
            // Seeding pip (ensurepip) takes most of venv's time; an environment nothing gets installed into does not need it.
            string[] venvArguments = install
                ? ["-m", "venv", "--system-site-packages", directory]
                : ["-m", "venv", "--system-site-packages", "--without-pip", directory];
            Directory.CreateDirectory(directory);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(directory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
            }
            _sandbox?.GiveToContent(directory);
            var venv = await RunAsync(python.Path, venvArguments, _sandbox is null ? _root : directory, Capture, timeout, directory, InstallationOf(python), ct).ConfigureAwait(false);
            Check(venv, "Creating the virtual environment", timeout, tail);

            if (install)
            {
                var arguments = new List<string> { "-m", "pip", "install", "--disable-pip-version-check", "--no-input" };
                if (!string.IsNullOrEmpty(_options.PackageIndex))
                {
                    arguments.Add("--index-url");
                    arguments.Add(_options.PackageIndex);
                }

                foreach (var link in _options.FindLinks)
                {
                    arguments.Add("--find-links");
                    arguments.Add(link);
                }

                if (_options.NoIndex)
                {
                    arguments.Add("--no-index");
                }

                var fullRequirements = Path.GetFullPath(requirementsFile!);
                arguments.Add("-r");
                arguments.Add(fullRequirements);
                log($"Installing packages from {Path.GetFileName(fullRequirements)}");
                tail.Clear();

                // Relative paths inside a requirements file (e.g. "./wheels/x.whl") are relative to pip's working directory.
                var remaining = timeout - _time.GetElapsedTime(started);
                var pip = await RunAsync(
                    environment.PythonPath, arguments, Path.GetDirectoryName(fullRequirements)!, Capture, remaining, directory,
                    InstallationOf(python), ct).ConfigureAwait(false);
                Check(pip, "Installing Python packages", timeout, tail);
            }

            if (_sandbox is not null)
            {
                // Built by content's user running the bundle's build code: taken back (links and special files removed,
                // root-owned, read-only) before any app or render uses it.
                Sandbox.ContentOutput.Seal(directory, takeOwnership: Sandbox.RunAsUser.ServerIsRoot && _sandbox.Mode != SandboxMode.Disabled, keepLinks: true);
            }
            await File.WriteAllTextAsync(Path.Combine(directory, ReadyMarker), environment.Hash + "\n", ct).ConfigureAwait(false);
            RuntimeLog.EnvironmentReady(_logger, directory);
        }
        catch (Exception e)
        {
            if (e is not OperationCanceledException)
            {
                RuntimeLog.EnvironmentFailed(_logger, e, directory);
            }

            TryDelete(directory);
            throw;
        }
    }

    private static void Check(ProcessResult result, string step, TimeSpan timeout, LogRing tail)
    {
        if (!result.TimedOut && result.ExitCode == 0)
        {
            return;
        }

        var lines = tail.All();

        // pip prefixes its diagnosis with "ERROR:"; those lines say what went wrong. Without any, show the tail.
        var errors = lines.Where(l => l.StartsWith("ERROR:", StringComparison.Ordinal)).ToArray();
        var shown = errors.Length > 0 ? errors : lines.TakeLast(15).ToArray();
        var headline = result.TimedOut
            ? $"{step} timed out after {timeout.TotalSeconds:0} seconds."
            : $"{step} failed (exit code {result.ExitCode}).";
        throw new PythonEnvironmentException(shown.Length == 0 ? headline : headline + "\n" + string.Join('\n', shown));
    }

    /// <summary>
    /// Runs one build step. Under the sandbox it runs as content does, seeing the environment being built (writable),
    /// the bundle's requirements and local package folders (read-only) and the interpreter; the network stays open
    /// for package indexes, minus this host's own listeners.
    /// </summary>
    private async Task<ProcessResult> RunAsync(
        string fileName, IReadOnlyList<string> arguments, string workingDirectory, Action<string> onLine,
        TimeSpan timeout, string environmentDirectory, string? installation, CancellationToken ct)
    {
        var environment = BuildEnvironment();
        var spec = new LaunchSpec(fileName, arguments, workingDirectory, environment);
        var readOnly = new List<string>();
        if (workingDirectory != environmentDirectory)
        {
            readOnly.Add(workingDirectory);
        }
        readOnly.AddRange(_options.FindLinks.Where(l => !l.Contains("://", StringComparison.Ordinal)).Select(Path.GetFullPath));
        if (_options.PackageIndex is { } index && index.StartsWith("file://", StringComparison.Ordinal))
        {
            readOnly.Add(new Uri(index).LocalPath);
        }
        if (installation is not null)
        {
            readOnly.Add(installation);
        }
        if (_sandbox is null)
        {
            return await ProcessRunner.RunAsync(spec, onLine, timeout <= TimeSpan.Zero ? TimeSpan.FromMilliseconds(1) : timeout, ct).ConfigureAwait(false);
        }
        var profile = new SandboxProfile { ReadOnly = readOnly, Writable = [environmentDirectory] };
        await using var launch = _sandbox.Prepare(spec, profile, "build-" + Guid.NewGuid().ToString("N")[..12]);
        var result = await ProcessRunner.RunAsync(launch.Spec, onLine, timeout <= TimeSpan.Zero ? TimeSpan.FromMilliseconds(1) : timeout, ct).ConfigureAwait(false);
        if (launch.ExplainExit(result.ExitCode) is { } why)
        {
            onLine("Connect: " + why);
        }
        return result;
    }

    private static string? InstallationOf(PythonInstallation python) =>
        PythonSandbox.InstallationPrefix(Path.GetDirectoryName(Path.GetFullPath(python.Path)) ?? "/usr/bin");

    /// <summary>
    /// Build steps get the minimal base environment plus what pip legitimately needs from the host: proxy and CA
    /// settings and the administrator's PIP_* configuration.
    /// </summary>
    private static Dictionary<string, string> BuildEnvironment()
    {
        var environment = new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PYTHONUNBUFFERED"] = "1",
            ["PYTHONNOUSERSITE"] = "1",
            ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1",
        };
        string[] passThrough =
        [
            "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
            "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE",
        ];
        foreach (System.Collections.DictionaryEntry entry in Environment.GetEnvironmentVariables())
        {
            var key = (string)entry.Key;
            if ((passThrough.Contains(key, StringComparer.Ordinal) || key.StartsWith("PIP_", StringComparison.Ordinal))
                && entry.Value is string value)
            {
                environment.TryAdd(key, value);
            }
        }

        return environment;
    }

    private void TryDelete(string directory)
    {
        try
        {
            if (Directory.Exists(directory))
            {
                Directory.Delete(directory, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            RuntimeLog.CleanupFailed(_logger, e, directory);
        }
    }
}
