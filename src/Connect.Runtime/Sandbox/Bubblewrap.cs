using Connect.Runtime.Processes;

namespace Connect.Runtime.Sandbox;

/// <summary>A host directory mounted at another path inside the sandbox (e.g. a process's socket directory at /run/connect).</summary>
public sealed record SandboxMount(string HostPath, string SandboxPath, bool Writable);

/// <summary>What one sandboxed process may see and use.</summary>
public sealed record SandboxProfile
{
    /// <summary>Host paths mounted read-only at the same place (bundle, environment, interpreter, launcher).</summary>
    public IReadOnlyList<string> ReadOnly { get; init; } = [];

    /// <summary>Host paths mounted writable at the same place (the content's own work directory, a render's output).</summary>
    public IReadOnlyList<string> Writable { get; init; } = [];

    /// <summary>Host paths mounted somewhere else inside.</summary>
    public IReadOnlyList<SandboxMount> Mounts { get; init; } = [];

    /// <summary>False: a private network namespace with only its own loopback (renders). Default true: outbound works.</summary>
    public bool Network { get; init; } = true;

    /// <summary>HOME inside the sandbox. Default /tmp (private to the process).</summary>
    public string Home { get; init; } = "/tmp";

    /// <summary>Memory, CPU and process-count limits of the whole tree.</summary>
    public ResourceLimits Limits { get; init; } = ResourceLimits.None;
}

/// <summary>
/// Wraps a launch in bubblewrap: new user, PID, IPC, UTS and cgroup namespaces, no capabilities, no_new_privs, a
/// private /proc that shows only the sandbox's own processes, private /tmp and /dev, the system directories and the
/// profile's paths read-only, and nothing else of the host: not the data directory, not the server's binaries or
/// configuration (masked with an empty tmpfs when they sit under a system directory).
/// </summary>
public static class Bubblewrap
{
    private static readonly string[] SystemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"];

    /// <summary>bubblewrap and the namespace-init process it forks sit above the program: spared by a graceful SIGTERM.</summary>
    public const int WrapperDepth = 2;

    public static LaunchSpec Wrap(LaunchSpec spec, SandboxProfile profile, string bubblewrap, IReadOnlyList<string> hidden)
    {
        var args = new List<string>
        {
            // PR_SET_PDEATHSIG on the launcher thread: the sandbox dies with the server, and only then.
            "--die-with-parent",
            "--unshare-user",
            "--unshare-pid",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--hostname", "connect-content",
            "--cap-drop", "ALL",
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--setenv", "HOME", profile.Home,
            "--setenv", "TMPDIR", "/tmp",
        };
        if (!profile.Network)
        {
            args.Add("--unshare-net");
        }
        foreach (var dir in SystemDirectories.Where(Directory.Exists))
        {
            args.AddRange(["--ro-bind", dir, dir]);
        }
        foreach (var path in hidden.Where(Directory.Exists).Where(h => SystemDirectories.Any(s => IsUnder(h, s))).Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--tmpfs", path]);
        }
        foreach (var path in profile.ReadOnly.Where(Path.Exists).Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--ro-bind", path, path]);
        }
        foreach (var path in profile.Writable.Where(Path.Exists).Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--bind", path, path]);
        }
        foreach (var mount in profile.Mounts.Where(m => Path.Exists(m.HostPath)))
        {
            args.AddRange([mount.Writable ? "--bind" : "--ro-bind", mount.HostPath, mount.SandboxPath]);
        }
        // The sandbox's root is bubblewrap's own tmpfs holding the mount points: read-only, so the only writable places
        // are the private /tmp and the profile's writable directories.
        args.AddRange(["--remount-ro", "/"]);
        args.AddRange(["--chdir", spec.WorkingDirectory, "--", spec.FileName]);
        args.AddRange(spec.Arguments);
        return spec with { FileName = bubblewrap, Arguments = args, WrapperDepth = spec.WrapperDepth + WrapperDepth };
    }

    private static bool IsUnder(string path, string directory) =>
        path.TrimEnd('/').StartsWith(directory + "/", StringComparison.Ordinal);

    /// <summary>
    /// The host pid of the sandboxed program: <paramref name="depth"/> generations below the wrapper (bubblewrap forks
    /// the namespace's init, which forks the program). Falls back to the deepest pid found.
    /// </summary>
    public static int ApplicationPid(int wrapperPid, int depth = WrapperDepth)
    {
        var pid = wrapperPid;
        for (var i = 0; i < depth; i++)
        {
            if (FirstChild(pid) is not { } child)
            {
                break;
            }
            pid = child;
        }
        return pid;
    }

    private static int? FirstChild(int pid)
    {
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
            {
                var children = File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries);
                if (children.Length > 0 && int.TryParse(children[0], out var child))
                {
                    return child;
                }
            }
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
        return null;
    }
}
