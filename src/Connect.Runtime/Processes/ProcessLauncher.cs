using System.Diagnostics;
using System.Text;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Processes;

public static class ProcessLauncher
{
    private const string DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

    /// <summary>Starts the process; its output goes to <see cref="ProcessHandle.Log"/> (and the spec's log file).</summary>
    public static ProcessHandle Start(LaunchSpec spec, ILogger logger, TimeProvider? time = null) =>
        StartCore(spec, logger, time ?? TimeProvider.System, onLine: null);

    /// <summary>
    /// The environment a child starts from when it does not inherit the server's: enough for a program to run
    /// (PATH, HOME, a UTF-8 locale, a temp dir) and nothing that could carry a secret.
    /// </summary>
    internal static Dictionary<string, string> BaseEnvironment()
    {
        var path = Environment.GetEnvironmentVariable("PATH");
        var home = Environment.GetEnvironmentVariable("HOME");
        var tmp = Environment.GetEnvironmentVariable("TMPDIR");
        return new Dictionary<string, string>(StringComparer.Ordinal)
        {
            ["PATH"] = string.IsNullOrEmpty(path) ? DefaultPath : path,
            ["HOME"] = string.IsNullOrEmpty(home) ? "/tmp" : home,
            ["LANG"] = "C.UTF-8",
            ["TMPDIR"] = string.IsNullOrEmpty(tmp) ? Path.GetTempPath().TrimEnd('/') : tmp,
        };
    }

    internal static ProcessHandle StartCore(LaunchSpec spec, ILogger logger, TimeProvider time, Action<string>? onLine)
    {
        ArgumentNullException.ThrowIfNull(spec);
        ArgumentNullException.ThrowIfNull(logger);
        if (!Directory.Exists(spec.WorkingDirectory))
        {
            throw new DirectoryNotFoundException($"Working directory '{spec.WorkingDirectory}' does not exist.");
        }

        var psi = new ProcessStartInfo
        {
            WorkingDirectory = spec.WorkingDirectory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
            StandardErrorEncoding = Encoding.UTF8,
        };

        if (!spec.InheritEnvironment)
        {
            psi.Environment.Clear();
            foreach (var (key, value) in BaseEnvironment())
            {
                psi.Environment[key] = value;
            }
        }

        foreach (var (key, value) in spec.Environment)
        {
            psi.Environment[key] = value;
        }

        // Resolve against the child's PATH, not ours: that is the PATH the caller reasons about.
        var searchPath = psi.Environment.TryGetValue("PATH", out var p) && !string.IsNullOrEmpty(p) ? p : DefaultPath;
        var executable = ResolveOnPath(spec.FileName, searchPath)
            ?? throw new FileNotFoundException($"Executable '{spec.FileName}' was not found.", spec.FileName);

        var setsid = ProcessGroups.Setsid;
        if (setsid is not null)
        {
            // Not a group leader (we never make it one), so setsid calls setsid(2) and execs in place: the PID we get
            // is the program's and also its process group id. "--" keeps setsid from parsing the program's arguments.
            psi.FileName = setsid;
            psi.ArgumentList.Add("--");
            psi.ArgumentList.Add(executable);
        }
        else
        {
            psi.FileName = executable;
        }

        foreach (var argument in spec.Arguments)
        {
            psi.ArgumentList.Add(argument);
        }

        var logFile = OpenLogFile(spec.LogFile);
        var process = new Process { StartInfo = psi, EnableRaisingEvents = true };
        var handle = new ProcessHandle(process, ownGroup: setsid is not null, time, logger, onLine, logFile, spec.WrapperDepth);
        process.Exited += (_, _) => handle.OnExited();
        try
        {
            // Forked from the launcher thread so that a parent-death signal fires only when the server dies.
            LauncherThread.Run(() => process.Start());
        }
        catch
        {
            logFile?.Dispose();
            process.Dispose();
            throw;
        }

        // Content must not read the server's stdin; EOF right away is the honest answer.
        process.StandardInput.Close();
        handle.OnStarted();
        if (setsid is null)
        {
            RuntimeLog.NoSetsid(logger, handle.Pid);
        }

        RuntimeLog.ProcessStarted(logger, handle.Pid, executable, spec.WorkingDirectory);
        _ = handle.Exited.ContinueWith(
            t => RuntimeLog.ProcessExited(logger, handle.Pid, t.Result),
            CancellationToken.None,
            TaskContinuationOptions.OnlyOnRanToCompletion | TaskContinuationOptions.ExecuteSynchronously,
            TaskScheduler.Default);
        return handle;
    }

    internal static string? ResolveOnPath(string fileName, string searchPath)
    {
        if (fileName.Contains('/', StringComparison.Ordinal))
        {
            var full = Path.GetFullPath(fileName);
            return File.Exists(full) ? full : null;
        }

        foreach (var dir in searchPath.Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, fileName);
            if (File.Exists(candidate) && IsExecutable(candidate))
            {
                return candidate;
            }
        }

        return null;
    }

    private static bool IsExecutable(string path) =>
        OperatingSystem.IsWindows()
        || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    private static StreamWriter? OpenLogFile(string? path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return null;
        }

        var directory = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(directory))
        {
            Directory.CreateDirectory(directory);
        }

        var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.ReadWrite | FileShare.Delete);
        return new StreamWriter(stream, new UTF8Encoding(encoderShouldEmitUTF8Identifier: false)) { AutoFlush = true };
    }
}
