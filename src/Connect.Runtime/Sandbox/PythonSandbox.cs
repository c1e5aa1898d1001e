namespace Connect.Runtime.Sandbox;

/// <summary>The file system a Python process needs: its environment and the interpreter the environment was made from.</summary>
public static class PythonSandbox
{
    /// <summary>The environment directory plus the installation behind it, read-only.</summary>
    public static IReadOnlyList<string> ReadOnlyPaths(string environmentDirectory)
    {
        var paths = new List<string> { environmentDirectory };
        if (BaseInstallation(environmentDirectory) is { } prefix)
        {
            paths.Add(prefix);
        }
        return paths;
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
                return InstallationPrefix(line[(eq + 1)..].Trim());
            }
        }
        return null;
    }

    /// <summary>The prefix of an interpreter given its bin directory; null when under /usr (always mounted).</summary>
    public static string? InstallationPrefix(string binDirectory)
    {
        var prefix = Path.GetDirectoryName(binDirectory.TrimEnd('/'));
        return prefix is null || prefix == "/" || prefix.StartsWith("/usr", StringComparison.Ordinal) ? null : prefix;
    }
}
