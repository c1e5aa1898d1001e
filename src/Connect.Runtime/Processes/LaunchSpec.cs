namespace Connect.Runtime.Processes;

/// <summary>What to run, where, and with which environment.</summary>
/// <param name="FileName">Executable path, or a name looked up on the child's PATH.</param>
/// <param name="Arguments">Arguments, passed verbatim (no shell).</param>
/// <param name="WorkingDirectory">Working directory of the child; must exist.</param>
/// <param name="Environment">Variables added on top of the base environment (they win over it).</param>
public sealed record LaunchSpec(
    string FileName,
    IReadOnlyList<string> Arguments,
    string WorkingDirectory,
    IReadOnlyDictionary<string, string> Environment)
{
    /// <summary>When set, every stdout/stderr line is also appended to this file. Default: null.</summary>
    public string? LogFile { get; init; }

    /// <summary>
    /// When false (the default) the child sees only PATH, HOME, LANG=C.UTF-8 and TMPDIR plus <see cref="Environment"/>,
    /// so secrets in the server's environment never reach content processes.
    /// </summary>
    public bool InheritEnvironment { get; init; }

    /// <summary>
    /// How many generations at the top of the tree are wrappers (bubblewrap and its namespace init) rather than the
    /// program: a graceful stop sends SIGTERM below them, since a wrapper killed first would take the program down with
    /// SIGKILL before it could shut down. Default 0.
    /// </summary>
    public int WrapperDepth { get; init; }
}
