using System.Globalization;
using System.Text.RegularExpressions;
using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Python;

/// <summary>An interpreter content can run on. <paramref name="Version"/> is exact, e.g. "3.11.7".</summary>
public sealed record PythonInstallation(string Path, string Version);

/// <summary>The Python interpreters available on this host: discovered once, then cached.</summary>
public sealed partial class PythonInstallations
{
    private const string ProbeScript =
        "import sys, os; print('%d.%d.%d' % tuple(sys.version_info[:3])); print(sys.executable); print(os.path.realpath(sys.executable))";

    private static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(20);
    private static readonly Version MinimumVersion = new(3, 8);

    private readonly PythonOptions _options;
    private readonly ILogger<PythonInstallations> _logger;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private IReadOnlyList<PythonInstallation>? _cached;

    private readonly Func<string, bool>? _usable;

    public PythonInstallations(PythonOptions options, ILogger<PythonInstallations> logger)
        : this(options, logger, usable: null)
    {
    }

    /// <param name="usable">Which interpreters content can run (the run-as user must be able to execute them); null: all.</param>
    public PythonInstallations(PythonOptions options, ILogger<PythonInstallations> logger, Func<string, bool>? usable)
    {
        _usable = usable;
        _options = options ?? throw new ArgumentNullException(nameof(options));
        _logger = logger ?? throw new ArgumentNullException(nameof(logger));
    }

    /// <summary>Installations of Python 3.8 or newer, oldest first.</summary>
    public async Task<IReadOnlyList<PythonInstallation>> GetAsync(CancellationToken ct = default)
    {
        if (_cached is { } cached)
        {
            return cached;
        }

        await _gate.WaitAsync(ct).ConfigureAwait(false);
        try
        {
            return _cached ??= await DiscoverAsync(ct).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>
    /// Posit's rule: same major.minor as requested, then the closest patch (exact first; on a tie the higher one).
    /// No request → the newest installation; nothing with that major.minor (or an unreadable request) → null.
    /// </summary>
    public static PythonInstallation? Match(IReadOnlyList<PythonInstallation> available, string? requestedVersion)
    {
        ArgumentNullException.ThrowIfNull(available);
        var parsed = available
            .Select(i => (Installation: i, Version: ParseVersion(i.Version)))
            .Where(x => x.Version is not null)
            .Select(x => (x.Installation, Version: x.Version!.Value))
            .ToList();

        if (string.IsNullOrWhiteSpace(requestedVersion))
        {
            return parsed.Count == 0 ? null : parsed.MaxBy(x => (x.Version.Major, x.Version.Minor, x.Version.Patch)).Installation;
        }

        if (ParseVersion(requestedVersion) is not { } wanted)
        {
            return null;
        }

        var sameMinor = parsed.Where(x => x.Version.Major == wanted.Major && x.Version.Minor == wanted.Minor).ToList();
        if (sameMinor.Count == 0)
        {
            return null;
        }

        if (wanted.Patch < 0)
        {
            return sameMinor.MaxBy(x => x.Version.Patch).Installation;
        }

        return sameMinor
            .OrderBy(x => Math.Abs(x.Version.Patch - wanted.Patch))
            .ThenByDescending(x => x.Version.Patch)
            .First()
            .Installation;
    }

    /// <summary>Leading numbers of "3.11.7", "3.11", "3.11.6rc1", "3.11.6+"; patch is -1 when absent.</summary>
    internal static (int Major, int Minor, int Patch)? ParseVersion(string version)
    {
        var match = VersionPattern().Match(version.Trim());
        if (!match.Success)
        {
            return null;
        }

        var major = int.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        var minor = int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        var patch = match.Groups[3].Success ? int.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture) : -1;
        return (major, minor, patch);
    }

    private async Task<IReadOnlyList<PythonInstallation>> DiscoverAsync(CancellationToken ct)
    {
        var candidates = _options.Executables.Count > 0 ? _options.Executables.Distinct(StringComparer.Ordinal).ToList() : HostCandidates();
        var probes = await Task.WhenAll(candidates.Select(c => ProbeAsync(c, ct))).ConfigureAwait(false);

        // The same binary shows up under several names (python3, python3.11, /bin vs /usr/bin, pyenv shims). Keep one per
        // real executable, under the first name that runs it directly; a shim (a wrapper script) yields the binary it ran.
        var byRealPath = new Dictionary<string, PythonInstallation>(StringComparer.Ordinal);
        var direct = new HashSet<string>(StringComparer.Ordinal);
        foreach (var probe in probes)
        {
            if (probe is not { } p)
            {
                continue;
            }

            var isDirect = string.Equals(p.Executable, p.Candidate, StringComparison.Ordinal);
            if (!byRealPath.ContainsKey(p.RealPath) || (isDirect && !direct.Contains(p.RealPath)))
            {
                byRealPath[p.RealPath] = new PythonInstallation(isDirect ? p.Candidate : p.Executable, p.Version);
                if (isDirect)
                {
                    direct.Add(p.RealPath);
                }
            }
        }

        var result = byRealPath.Values
            .Where(i => _usable is null || _usable(i.Path))
            .OrderBy(i => ParseVersion(i.Version))
            .ThenBy(i => i.Path, StringComparer.Ordinal)
            .ToList();
        foreach (var installation in result)
        {
            RuntimeLog.PythonFound(_logger, installation.Version, installation.Path);
        }

        if (result.Count == 0)
        {
            RuntimeLog.NoPythonFound(_logger);
        }

        return result;
    }

    private static List<string> HostCandidates()
    {
        // Fixed locations first so the canonical name (/usr/bin/python3) wins over aliases reached through PATH.
        var candidates = new List<string>();
        candidates.AddRange(InDirectory("/usr/local/bin"));
        candidates.AddRange(InDirectory("/usr/bin"));
        var pyenvRoot = Environment.GetEnvironmentVariable("PYENV_ROOT");
        var home = Environment.GetEnvironmentVariable("HOME");
        if (string.IsNullOrEmpty(pyenvRoot) && !string.IsNullOrEmpty(home))
        {
            pyenvRoot = Path.Combine(home, ".pyenv");
        }

        var versions = string.IsNullOrEmpty(pyenvRoot) ? null : Path.Combine(pyenvRoot, "versions");
        if (versions is not null && Directory.Exists(versions))
        {
            foreach (var dir in Directory.EnumerateDirectories(versions).Order(StringComparer.Ordinal))
            {
                var python = Path.Combine(dir, "bin", "python3");
                if (File.Exists(python))
                {
                    candidates.Add(python);
                }
            }
        }

        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            candidates.AddRange(InDirectory(dir));
        }

        return candidates.Distinct(StringComparer.Ordinal).ToList();
    }

    private static IEnumerable<string> InDirectory(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return [];
        }

        try
        {
            return Directory.EnumerateFiles(directory, "python3*")
                .Where(f => ExecutableName().IsMatch(Path.GetFileName(f)))
                .Order(StringComparer.Ordinal)
                .ToList();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private async Task<(string Candidate, string Version, string Executable, string RealPath)?> ProbeAsync(string candidate, CancellationToken ct)
    {
        var lines = new List<string>();
        try
        {
            // The server's own environment: pyenv shims need their variables, and these are host probes, not content.
            var spec = new LaunchSpec(candidate, ["-c", ProbeScript], Path.GetTempPath(), new Dictionary<string, string>())
            {
                InheritEnvironment = true,
            };
            var result = await ProcessRunner.RunAsync(spec, line => { lock (lines) { lines.Add(line); } }, ProbeTimeout, ct).ConfigureAwait(false);
            if (result.ExitCode != 0 || result.TimedOut || lines.Count < 3)
            {
                RuntimeLog.PythonCandidateIgnored(_logger, candidate, result.TimedOut ? "timed out" : $"exit code {result.ExitCode}");
                return null;
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            RuntimeLog.PythonCandidateIgnored(_logger, candidate, e.Message);
            return null;
        }

        // Warnings (e.g. from site customisation) can precede our output, so read the last three lines.
        var version = lines[^3].Trim();
        if (ParseVersion(version) is not { } v || new Version(v.Major, v.Minor) < MinimumVersion)
        {
            RuntimeLog.PythonCandidateIgnored(_logger, candidate, $"version {version} is older than {MinimumVersion}");
            return null;
        }

        return (candidate, version, lines[^2].Trim(), lines[^1].Trim());
    }

    [GeneratedRegex(@"^(\d+)\.(\d+)(?:\.(\d+))?")]
    private static partial Regex VersionPattern();

    [GeneratedRegex(@"^python3(\.\d+)?$")]
    private static partial Regex ExecutableName();
}
