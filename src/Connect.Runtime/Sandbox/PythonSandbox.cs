namespace Connect.Runtime.Sandbox;

/// <summary>
/// The interpreter installation a Python process needs besides its environment. Taken from the interpreter the server
/// chose, never from the environment's pyvenv.cfg: build-time code writes that file.
/// </summary>
public static class PythonSandbox
{
    /// <summary>The prefix of an interpreter given its bin directory; null when under /usr (always mounted).</summary>
    public static string? InstallationPrefix(string binDirectory)
    {
        var prefix = Path.GetDirectoryName(binDirectory.TrimEnd('/'));
        return prefix is null || prefix == "/" || prefix.StartsWith("/usr", StringComparison.Ordinal) ? null : prefix;
    }
}
