namespace Connect.Runtime.Sandbox;

/// <summary>
/// Who content runs as and what it may use, config section "Applications" (Posit Connect's name for it).
/// Per-content <c>memory_limit</c> / <c>cpu_limit</c> fall back to the defaults here and may not exceed the maxima.
/// </summary>
public sealed class ApplicationsOptions
{
    /// <summary>
    /// The unprivileged user content processes, renders and environment builds run as. Default "connect-content",
    /// created as a system user when the server runs as root and it does not exist. Empty: run as the server's
    /// own user (only allowed when the server is not root).
    /// </summary>
    public string RunAs { get; set; } = "connect-content";

    /// <summary>Memory a content process tree may use when its item sets none, in MiB; 0 = unlimited. Default 2048.</summary>
    public long DefaultMemoryLimitMB { get; set; } = 2048;

    /// <summary>Highest memory_limit a publisher may set, in MiB; 0 = no maximum. Default 16384.</summary>
    public long MaxMemoryLimitMB { get; set; } = 16384;

    /// <summary>CPUs a content process tree may use when its item sets none; 0 = unlimited. Default 0.</summary>
    public double DefaultCpuLimit { get; set; }

    /// <summary>Highest cpu_limit a publisher may set; 0 = no maximum. Default 0.</summary>
    public double MaxCpuLimit { get; set; }

    /// <summary>Most processes and threads one content process tree may have (fork-bomb guard). Default 512.</summary>
    public int ProcessLimit { get; set; } = 512;

    /// <summary>
    /// Where per-process cgroups are made. Default (null): found at start, a delegated cgroup v2 subtree of the server's
    /// own cgroup, or "connect" under each cgroup v1 controller when the server is root. Under cgroup v2 a set value is
    /// the delegated cgroup directory (absolute, or relative to /sys/fs/cgroup); under v1 it is the path below each
    /// controller's hierarchy, to which the node name is appended. Empty: do not use cgroups (limits fall back to rlimits).
    /// </summary>
    public string? CgroupRoot { get; set; }

    public IEnumerable<string> Validate()
    {
        if (DefaultMemoryLimitMB < 0) yield return "Applications:DefaultMemoryLimitMB must be 0 (unlimited) or more.";
        if (MaxMemoryLimitMB < 0) yield return "Applications:MaxMemoryLimitMB must be 0 (no maximum) or more.";
        if (MaxMemoryLimitMB > 0 && DefaultMemoryLimitMB > MaxMemoryLimitMB)
            yield return "Applications:DefaultMemoryLimitMB must not exceed Applications:MaxMemoryLimitMB.";
        if (DefaultCpuLimit < 0 || double.IsNaN(DefaultCpuLimit)) yield return "Applications:DefaultCpuLimit must be 0 (unlimited) or more.";
        if (MaxCpuLimit < 0 || double.IsNaN(MaxCpuLimit)) yield return "Applications:MaxCpuLimit must be 0 (no maximum) or more.";
        if (MaxCpuLimit > 0 && DefaultCpuLimit > MaxCpuLimit)
            yield return "Applications:DefaultCpuLimit must not exceed Applications:MaxCpuLimit.";
        if (ProcessLimit is < 8 or > 1_000_000) yield return "Applications:ProcessLimit must be between 8 and 1000000.";
    }
}

/// <summary>The limits one sandboxed process tree gets; null means unlimited.</summary>
public sealed record ResourceLimits(long? MemoryBytes, double? Cpus, int? MaxProcesses)
{
    public static ResourceLimits None { get; } = new(null, null, null);
}
