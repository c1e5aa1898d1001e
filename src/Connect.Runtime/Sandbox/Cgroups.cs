using System.Globalization;
using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

/// <summary>File-level cgroup operations shared by the v1 and v2 limiters (both expose cgroup.procs and rmdir semantics).</summary>
internal static class Cgroups
{
    internal const long CpuPeriodMicroseconds = 100_000;

    // The kernel rejects quotas below 1 ms per period.
    private const long MinCpuQuotaMicroseconds = 1_000;

    private static readonly TimeSpan KillTimeout = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan RemoveTimeout = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(20);

    /// <summary>
    /// Joins every cgroup named before "--", then execs what follows. The shell is still the process the server
    /// started, so the program is inside its limits from its first instruction: nothing it does can fork outside.
    /// </summary>
    internal const string JoinScript = """
        while [ $# -gt 0 ] && [ "$1" != -- ]; do
          if ! echo $$ > "$1"; then
            echo "connect: could not join resource limit group $1; the program was not started" >&2
            exit 125
          fi
          shift
        done
        if [ $# -lt 2 ]; then
          echo "connect: no program to run after joining resource limit groups" >&2
          exit 125
        fi
        shift
        exec "$@"
        """;

    internal const string Shell = "/bin/sh";

    /// <summary>Exit code of the join wrapper when the process could not enter its scope (and the program never ran).</summary>
    internal const int JoinFailedExitCode = 125;

    internal static LaunchSpec JoinThenExec(LaunchSpec spec, IEnumerable<string> procsFiles)
    {
        // "$0" names the wrapper in the shell's own error messages.
        var args = new List<string> { "-c", JoinScript, "connect-limits" };
        args.AddRange(procsFiles);
        args.Add("--");
        args.Add(spec.FileName);
        args.AddRange(spec.Arguments);
        return spec with { FileName = Shell, Arguments = args };
    }

    /// <summary>cpu.max (v2) / cfs quota (v1) microseconds per <see cref="CpuPeriodMicroseconds"/> for a CPU count.</summary>
    internal static long CpuQuotaMicroseconds(double cpus) =>
        Math.Max(MinCpuQuotaMicroseconds, (long)Math.Round(cpus * CpuPeriodMicroseconds, MidpointRounding.AwayFromZero));

    internal static string FormatBytes(long bytes)
    {
        const long MiB = 1024 * 1024;
        const long GiB = 1024 * MiB;
        if (bytes >= GiB && bytes % GiB == 0)
        {
            return (bytes / GiB).ToString(CultureInfo.InvariantCulture) + " GiB";
        }
        if (bytes >= MiB && bytes % MiB == 0)
        {
            return (bytes / MiB).ToString(CultureInfo.InvariantCulture) + " MiB";
        }
        return bytes.ToString(CultureInfo.InvariantCulture) + " bytes";
    }

    internal static string FormatCpus(double cpus) => cpus.ToString("0.###", CultureInfo.InvariantCulture);

    /// <summary>The value of a "key value" line in a flat-keyed cgroup file (memory.events, pids.events, memory.oom_control).</summary>
    internal static long? ReadKey(string text, string key)
    {
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var space = line.IndexOf(' ', StringComparison.Ordinal);
            if (space > 0 && line.AsSpan(0, space).SequenceEqual(key)
                && long.TryParse(line.AsSpan(space + 1).Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value))
            {
                return value;
            }
        }
        return null;
    }

    internal static long? ReadKeyFromFile(string path, string key) => TryRead(path) is { } text ? ReadKey(text, key) : null;

    internal static long? ReadNumberFile(string path) =>
        TryRead(path) is { } text && long.TryParse(text.Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var value) ? value : null;

    internal static string? TryRead(string path)
    {
        try
        {
            return File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Writes a control file in one write(2), as the kernel parses each write on its own.</summary>
    internal static void Write(string path, string value) => File.WriteAllText(path, value);

    internal static List<int> ReadProcs(string directory)
    {
        var pids = new List<int>();
        if (TryRead(Path.Combine(directory, "cgroup.procs")) is not { } text)
        {
            return pids;
        }
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (int.TryParse(line, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                pids.Add(pid);
            }
        }
        return pids;
    }

    /// <summary>
    /// SIGKILLs every process in the cgroups until none is left, and returns how many distinct processes it signalled.
    /// With v2's cgroup.kill the kernel does it atomically; otherwise a process may fork between our read of
    /// cgroup.procs and the kill, so the loop reads again until the groups are empty (pids.max bounds the race).
    /// </summary>
    internal static async Task<int> KillAllAsync(IReadOnlyList<string> directories, bool useCgroupKill, ILogger logger)
    {
        var signalled = new HashSet<int>();
        var start = TimeProvider.System.GetTimestamp();
        while (true)
        {
            var pids = directories.SelectMany(ReadProcs).Distinct().ToList();
            if (pids.Count == 0)
            {
                return signalled.Count;
            }
            if (TimeProvider.System.GetElapsedTime(start) > KillTimeout)
            {
                foreach (var dir in directories)
                {
                    LimitsLog.ScopeNotEmptied(logger, dir);
                }
                return signalled.Count;
            }

            signalled.UnionWith(pids);
            foreach (var directory in directories)
            {
                var killFile = Path.Combine(directory, "cgroup.kill");
                if (useCgroupKill && File.Exists(killFile))
                {
                    try
                    {
                        Write(killFile, "1");
                        continue;
                    }
                    catch (IOException)
                    {
                        // Removed meanwhile, or refused: signal the members one by one instead.
                    }
                }
                foreach (var pid in ReadProcs(directory))
                {
                    ProcessGroups.SignalProcess(pid, ProcessGroups.SigKill);
                }
            }
            await Task.Delay(PollInterval).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// rmdir of a cgroup, retried for a while: killed processes leave their cgroup only once the kernel has torn them
    /// down, and rmdir fails with EBUSY until then. Returns false (and logs) when it is still there.
    /// </summary>
    internal static async Task<bool> RemoveAsync(string directory, ILogger logger)
    {
        var start = TimeProvider.System.GetTimestamp();
        while (true)
        {
            try
            {
                // Not recursive: a cgroup directory is removed by rmdir alone; its control files cannot be unlinked.
                Directory.Delete(directory, recursive: false);
                return true;
            }
            catch (DirectoryNotFoundException)
            {
                return true;
            }
            catch (IOException e)
            {
                if (TimeProvider.System.GetElapsedTime(start) > RemoveTimeout)
                {
                    LimitsLog.ScopeNotRemoved(logger, directory, e.Message);
                    return false;
                }
            }
            catch (UnauthorizedAccessException e)
            {
                LimitsLog.ScopeNotRemoved(logger, directory, e.Message);
                return false;
            }
            await Task.Delay(PollInterval).ConfigureAwait(false);
        }
    }

    internal static void TryRemoveNow(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort on a path that already failed; CleanupStaleAsync removes what is left at the next start.
        }
    }

    /// <summary>Child cgroup directories of <paramref name="directory"/>, deepest first, so that rmdir can go in order.</summary>
    internal static List<string> DescendantsDeepestFirst(string directory)
    {
        var result = new List<string>();
        if (!Directory.Exists(directory))
        {
            return result;
        }
        foreach (var child in Directory.EnumerateDirectories(directory))
        {
            result.AddRange(DescendantsDeepestFirst(child));
            result.Add(child);
        }
        return result;
    }

    internal static void ValidateName(string name)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name is "." or ".." || name.Contains('/', StringComparison.Ordinal) || name.Contains('\0', StringComparison.Ordinal)
            || name.Contains('\n', StringComparison.Ordinal))
        {
            throw new ArgumentException($"'{name}' is not a valid resource limit scope name (one path segment).", nameof(name));
        }
    }
}
