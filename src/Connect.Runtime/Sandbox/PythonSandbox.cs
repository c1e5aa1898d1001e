namespace Connect.Runtime.Sandbox;

/// <summary>The file system a Python content process needs: its bundle, its venv, the interpreter the venv was made from, the launcher.</summary>
public static class PythonSandbox
{
    public static SandboxSpec For(string bundleDirectory, string environmentDirectory, string launcherDirectory)
    {
        var readOnly = new List<string> { bundleDirectory, environmentDirectory, launcherDirectory };
        if (BaseInstallation(environmentDirectory) is { } prefix)
        {
            readOnly.Add(prefix);
        }
        return new SandboxSpec(readOnly, []);
    }

    /// <summary>
    /// The installation a venv was created from (pyvenv.cfg's <c>home</c> is its bin directory); the venv's
    /// python is a link into it. Null when it is already visible (under /usr) or unknown.
    /// </summary>
    public static string? BaseInstallation(string environmentDirectory)
    {
        var cfg = Path.Combine(environmentDirectory, "pyvenv.cfg");
        if (!File.Exists(cfg))
        {
            return null;
        }
        foreach (var line in File.ReadLines(cfg))
        {
            var eq = line.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0 && line[..eq].Trim() == "home")
            {
                var home = line[(eq + 1)..].Trim();
                var prefix = Path.GetDirectoryName(home.TrimEnd('/'));
                return prefix is null || prefix == "/" || prefix.StartsWith("/usr", StringComparison.Ordinal) ? null : prefix;
            }
        }
        return null;
    }
}
