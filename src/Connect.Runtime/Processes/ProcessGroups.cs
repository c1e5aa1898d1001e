using System.Globalization;
using System.Runtime.InteropServices;

namespace Connect.Runtime.Processes;

/// <summary>POSIX process-group signalling and liveness, used to stop a whole content process tree.</summary>
internal static partial class ProcessGroups
{
    internal const int SigKill = 9;
    internal const int SigTerm = 15;

    private static readonly Lazy<string?> SetsidPath = new(() =>
        OperatingSystem.IsWindows() ? null : ProcessLauncher.ResolveOnPath("setsid", "/usr/bin:/bin:/usr/local/bin"));

    /// <summary>Path of util-linux <c>setsid</c>, or null when the host lacks it.</summary>
    internal static string? Setsid => SetsidPath.Value;

    /// <summary>Sends <paramref name="signal"/> to every process in group <paramref name="pgid"/>; false if none is left.</summary>
    internal static bool SignalGroup(int pgid, int signal) => pgid > 1 && Kill(-pgid, signal) == 0;

    internal static bool SignalProcess(int pid, int signal) => pid > 1 && Kill(pid, signal) == 0;

    /// <summary>
    /// Whether any non-zombie process still belongs to the group. kill(-pgid, 0) alone is not enough: orphaned
    /// members become zombies of PID 1, and a container's PID 1 may never reap them.
    /// </summary>
    internal static bool HasLiveMembers(int pgid)
    {
        if (!Directory.Exists("/proc"))
        {
            return Kill(-pgid, 0) == 0;
        }

        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]))
            {
                continue;
            }

            var (state, group) = ReadStat(dir);
            if (group == pgid && state is not ('Z' or 'X' or '\0'))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Sends <paramref name="signal"/> to the members of group <paramref name="pgid"/> at least <paramref name="depth"/>
    /// generations below its leader (the program under its wrappers); false when there are none yet.
    /// </summary>
    internal static bool SignalGroupBelow(int pgid, int depth, int signal)
    {
        if (!Directory.Exists("/proc"))
        {
            return false;
        }
        var parents = new Dictionary<int, int>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            var name = Path.GetFileName(dir);
            if (name.Length == 0 || !char.IsAsciiDigit(name[0]) || !int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            var (state, group, parent) = ReadStatWithParent(dir);
            if (group == pgid && state is not ('Z' or 'X' or '\0'))
            {
                parents[pid] = parent;
            }
        }
        var sent = false;
        foreach (var pid in parents.Keys)
        {
            var generations = 0;
            var current = pid;
            while (current != pgid && parents.TryGetValue(current, out var parent) && generations < 64)
            {
                generations++;
                current = parent;
            }
            if (current == pgid && generations >= depth)
            {
                sent |= Kill(pid, signal) == 0;
            }
        }
        return sent;
    }

    /// <summary>State letter and process group id from /proc/&lt;pid&gt;/stat; ('\0', -1) if it vanished.</summary>
    internal static (char State, int Pgid) ReadStat(string procDirectory)
    {
        var (state, pgid, _) = ReadStatWithParent(procDirectory);
        return (state, pgid);
    }

    private static (char State, int Pgid, int Ppid) ReadStatWithParent(string procDirectory)
    {
        string stat;
        try
        {
            stat = File.ReadAllText(Path.Combine(procDirectory, "stat"));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return ('\0', -1, -1);
        }

        // The command name is in parentheses and may itself contain spaces or ')'; fields resume after the last ')'.
        var close = stat.LastIndexOf(')');
        if (close < 0)
        {
            return ('\0', -1, -1);
        }

        var fields = stat[(close + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length < 3
            || !int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var pgid)
            || !int.TryParse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture, out var ppid))
        {
            return ('\0', -1, -1);
        }

        return (fields[0][0], pgid, ppid);
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
