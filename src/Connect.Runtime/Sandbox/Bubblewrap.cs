using Connect.Runtime.Processes;

namespace Connect.Runtime.Sandbox;

/// <summary>What a sandboxed process may see of the host's file system.</summary>
/// <param name="ReadOnly">Host paths mounted read-only at the same place (the bundle, its environment, its interpreter).</param>
/// <param name="Writable">Host paths mounted writable at the same place.</param>
public sealed record SandboxSpec(IReadOnlyList<string> ReadOnly, IReadOnlyList<string> Writable);

/// <summary>
/// Wraps a launch in bubblewrap. The process gets a private mount namespace holding the system directories
/// read-only, its own bundle, environment and interpreter read-only, and a private /tmp: the data directory
/// (catalog, secret key, other items' bundles and variables) does not exist for it. The network namespace is
/// shared, since the front end reaches the process on a loopback port.
/// </summary>
public static class Bubblewrap
{
    private static readonly string[] SystemDirectories = ["/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"];

    public static LaunchSpec Wrap(LaunchSpec spec, SandboxSpec sandbox, string bubblewrap)
    {
        var args = new List<string>
        {
            "--die-with-parent",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--proc", "/proc",
            "--dev", "/dev",
            "--tmpfs", "/tmp",
            "--setenv", "HOME", "/tmp",
            "--setenv", "TMPDIR", "/tmp",
        };
        foreach (var dir in SystemDirectories.Where(Directory.Exists))
        {
            args.AddRange(["--ro-bind", dir, dir]);
        }
        foreach (var path in sandbox.ReadOnly.Where(Path.Exists).Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--ro-bind", path, path]);
        }
        foreach (var path in sandbox.Writable.Where(Path.Exists).Distinct(StringComparer.Ordinal))
        {
            args.AddRange(["--bind", path, path]);
        }
        args.AddRange(["--chdir", spec.WorkingDirectory, "--", spec.FileName]);
        args.AddRange(spec.Arguments);
        return spec with { FileName = bubblewrap, Arguments = args };
    }

    /// <summary>
    /// The pid of the sandboxed program: bubblewrap's one child (it forks into the new namespaces, then execs).
    /// This is the pid Connect reports for the job, as the app itself sees it. Falls back to bubblewrap's own pid.
    /// </summary>
    public static int ApplicationPid(int bubblewrapPid)
    {
        try
        {
            foreach (var task in Directory.EnumerateDirectories($"/proc/{bubblewrapPid}/task"))
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
        return bubblewrapPid;
    }
}
