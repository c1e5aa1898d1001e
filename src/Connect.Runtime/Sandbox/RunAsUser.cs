using System.Globalization;
using System.Runtime.InteropServices;
using Connect.Runtime.Processes;

namespace Connect.Runtime.Sandbox;

/// <summary>The unprivileged account content runs as (Applications:RunAs), with its numeric ids.</summary>
public sealed partial record RunAsUser(string Name, int Uid, int Gid)
{
    /// <summary>Whether this server process runs as root (and so can, and must, drop privileges for content).</summary>
    public static bool ServerIsRoot => !OperatingSystem.IsWindows() && GetEuid() == 0;

    /// <summary>The account named <paramref name="name"/> from the system's user database, or null.</summary>
    public static RunAsUser? Find(string name)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            return null;
        }
        // /etc/passwd holds system users created by useradd; getent also asks NSS (LDAP, sssd) when present.
        var line = File.Exists("/etc/passwd")
            ? File.ReadLines("/etc/passwd").FirstOrDefault(l => l.StartsWith(name + ":", StringComparison.Ordinal))
            : null;
        line ??= RunQuiet("getent", "passwd", name);
        if (line is null)
        {
            return null;
        }
        var fields = line.Trim().Split(':');
        return fields.Length >= 4
            && int.TryParse(fields[2], NumberStyles.None, CultureInfo.InvariantCulture, out var uid)
            && int.TryParse(fields[3], NumberStyles.None, CultureInfo.InvariantCulture, out var gid)
            ? new RunAsUser(name, uid, gid)
            : null;
    }

    /// <summary>Creates <paramref name="name"/> as a system user with its own group, no home and no login shell.</summary>
    public static string? Create(string name)
    {
        var shell = File.Exists("/usr/sbin/nologin") ? "/usr/sbin/nologin" : "/bin/false";
        var output = RunQuiet("useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent", "--shell", shell, name);
        return Find(name) is null ? $"useradd {name} failed{(string.IsNullOrWhiteSpace(output) ? "" : ": " + output.Trim())}" : null;
    }

    /// <summary>
    /// Whether this user can run <paramref name="path"/>, asked the kernel's way (access(2) as that user): an
    /// interpreter under /root (pyenv) is not runnable by it, and must not be offered to content.
    /// </summary>
    public bool CanExecute(string path)
    {
        if (!ServerIsRoot)
        {
            return File.Exists(path);
        }
        var id = Uid.ToString(CultureInfo.InvariantCulture);
        var gid = Gid.ToString(CultureInfo.InvariantCulture);
        return RunExitCode("setpriv", $"--reuid={id}", $"--regid={gid}", "--clear-groups", "--", "/usr/bin/test", "-x", path) == 0;
    }

    /// <summary>Gives <paramref name="path"/> (not recursively) to this user, so that a sandbox may write it.</summary>
    public void Own(string path)
    {
        if (Chown(path, Uid, Gid) != 0)
        {
            throw new IOException($"chown {path} to {Name} failed (errno {Marshal.GetLastPInvokeError()})");
        }
    }

    internal static int RunExitCode(string program, params string[] arguments) => Run(program, arguments).Code;

    internal static string? RunQuiet(string program, params string[] arguments)
    {
        var (code, output) = Run(program, arguments);
        return code == 0 ? output : (output.Length == 0 ? null : output);
    }

    private static (int Code, string Output) Run(string program, string[] arguments)
    {
        var executable = ProcessLauncher.ResolveOnPath(program, "/usr/sbin:/usr/bin:/sbin:/bin");
        if (executable is null)
        {
            return (-1, "");
        }
        var psi = new System.Diagnostics.ProcessStartInfo(executable) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }
        using var process = System.Diagnostics.Process.Start(psi)!;
        var error = process.StandardError.ReadToEndAsync();
        var output = process.StandardOutput.ReadToEnd() + error.GetAwaiter().GetResult();
        process.WaitForExit();
        return (process.ExitCode, output);
    }

    [LibraryImport("libc", EntryPoint = "geteuid")]
    private static partial uint GetEuid();

    [LibraryImport("libc", EntryPoint = "chown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Chown(string path, int uid, int gid);


}
