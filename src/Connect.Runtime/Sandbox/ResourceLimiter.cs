using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

/// <summary>How many processes and scopes <see cref="ResourceLimiter.CleanupStaleAsync"/> found left by a previous run.</summary>
public sealed record StaleCleanup(int ProcessesKilled, int ScopesRemoved);

/// <summary>
/// Puts each content process tree into its own limit scope (memory, CPU, process count), with the best mechanism the
/// host offers: a delegated cgroup v2 subtree, cgroup v1 hierarchies (as root), per-process rlimits through prlimit,
/// or nothing. Pick one with <see cref="Detect"/> once at server start.
/// </summary>
public abstract class ResourceLimiter
{
    private const long MiB = 1024 * 1024;

    private protected ResourceLimiter()
    {
    }

    /// <summary>"cgroup v2", "cgroup v1", "rlimit" or "none".</summary>
    public abstract string Mechanism { get; }

    /// <summary>What is and is not enforced with this mechanism on this host, one sentence each (for the start log).</summary>
    public abstract IReadOnlyList<string> Notes { get; }

    /// <summary>
    /// Makes a scope named <paramref name="name"/> (one path segment, unique among live scopes, e.g. the process id)
    /// with <paramref name="limits"/>; null limits are left unset.
    /// </summary>
    public abstract LimitScope Create(string name, ResourceLimits limits);

    /// <summary>
    /// At server start: SIGKILLs every process a previous run left in scopes under this limiter's root and removes
    /// those scopes. Content processes must never outlive the server that supervised them.
    /// </summary>
    public abstract Task<StaleCleanup> CleanupStaleAsync();

    /// <summary>
    /// The best mechanism available: cgroup v2 when this process's cgroup is a writable delegated subtree with the
    /// memory and pids controllers, else cgroup v1 when running as root with writable memory and pids hierarchies,
    /// else rlimits when /usr/bin/prlimit exists, else none. <see cref="ApplicationsOptions.CgroupRoot"/> overrides the
    /// cgroup root found (empty: skip cgroups). Logs the choice, why better ones were unusable, and <see cref="Notes"/>.
    /// </summary>
    public static ResourceLimiter Detect(ApplicationsOptions options, string nodeName, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(logger);
        Cgroups.ValidateName(nodeName);

        var limiter = DetectCore(options, nodeName, logger);
        LimitsLog.MechanismChosen(logger, limiter.Mechanism);
        foreach (var note in limiter.Notes)
        {
            LimitsLog.Note(logger, note);
        }
        return limiter;
    }

    private static ResourceLimiter DetectCore(ApplicationsOptions options, string nodeName, ILogger logger)
    {
        if (options.CgroupRoot is "")
        {
            LimitsLog.MechanismUnusable(logger, "cgroups", "Applications:CgroupRoot is empty");
        }
        else
        {
            if (CgroupV2Limiter.TryCreate(CgroupV2Limiter.MountPoint, options.CgroupRoot, logger, out var reason) is { } v2)
            {
                return v2;
            }
            LimitsLog.MechanismUnusable(logger, "cgroup v2", reason);

            if (CgroupV1Limiter.TryCreate(CgroupV1Limiter.MountPoint, options.CgroupRoot, nodeName, logger, out reason) is { } v1)
            {
                return v1;
            }
            LimitsLog.MechanismUnusable(logger, "cgroup v1", reason);
        }

        if (File.Exists(RlimitLimiter.DefaultPrlimit))
        {
            return new RlimitLimiter(RlimitLimiter.DefaultPrlimit);
        }
        LimitsLog.MechanismUnusable(logger, "rlimit", $"{RlimitLimiter.DefaultPrlimit} does not exist (install util-linux)");
        return new NoResourceLimiter();
    }

    /// <summary>
    /// The limits a content item gets: its own memory (bytes) and CPU limits, or the defaults when it sets none (null
    /// or 0); a default of 0 means unlimited. Values above the configured maxima are lowered to them, so that lowering
    /// a maximum also applies to items that were set earlier. The process cap is always <see cref="ApplicationsOptions.ProcessLimit"/>.
    /// </summary>
    public static ResourceLimits ResourceLimitsFor(long? memoryLimitBytes, double? cpuLimit, ApplicationsOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);

        long? memory = memoryLimitBytes is > 0 ? memoryLimitBytes : o.DefaultMemoryLimitMB * MiB;
        if (o.MaxMemoryLimitMB > 0 && memory > o.MaxMemoryLimitMB * MiB)
        {
            memory = o.MaxMemoryLimitMB * MiB;
        }
        if (memory <= 0)
        {
            memory = null;
        }

        double? cpus = cpuLimit is > 0 && double.IsFinite(cpuLimit.Value) ? cpuLimit : o.DefaultCpuLimit;
        if (o.MaxCpuLimit > 0 && cpus > o.MaxCpuLimit)
        {
            cpus = o.MaxCpuLimit;
        }
        if (cpus is not > 0)
        {
            cpus = null;
        }

        return new ResourceLimits(memory, cpus, o.ProcessLimit);
    }

    /// <summary>Errors in a publisher's memory_limit (bytes) / cpu_limit, as the content API reports them; none when valid.</summary>
    public static IEnumerable<string> ValidateContentLimits(long? memoryLimitBytes, double? cpuLimit, ApplicationsOptions o)
    {
        ArgumentNullException.ThrowIfNull(o);
        return Validate(memoryLimitBytes, cpuLimit, o);

        static IEnumerable<string> Validate(long? memory, double? cpu, ApplicationsOptions o)
        {
            if (memory < 0)
            {
                yield return "memory_limit must be 0 (use the server's default) or a positive number of bytes.";
            }
            else if (o.MaxMemoryLimitMB > 0 && memory > o.MaxMemoryLimitMB * MiB)
            {
                yield return $"memory_limit must not exceed the maximum of {o.MaxMemoryLimitMB * MiB} bytes ({Cgroups.FormatBytes(o.MaxMemoryLimitMB * MiB)}).";
            }

            if (cpu is { } c && (c < 0 || !double.IsFinite(c)))
            {
                yield return "cpu_limit must be 0 (use the server's default) or a positive number of CPUs.";
            }
            else if (o.MaxCpuLimit > 0 && cpu > o.MaxCpuLimit)
            {
                yield return $"cpu_limit must not exceed the maximum of {Cgroups.FormatCpus(o.MaxCpuLimit)} CPUs.";
            }
        }
    }
}

/// <summary>No mechanism is available: scopes exist so callers need no special case, but nothing is enforced.</summary>
internal sealed class NoResourceLimiter : ResourceLimiter
{
    public override string Mechanism => "none";

    public override IReadOnlyList<string> Notes { get; } =
    [
        "no memory, CPU or process limits are enforced: neither a usable cgroup hierarchy nor prlimit is available.",
    ];

    public override LimitScope Create(string name, ResourceLimits limits)
    {
        Cgroups.ValidateName(name);
        ArgumentNullException.ThrowIfNull(limits);
        return new LimitScope(name, limits, NoScopeBackend.Instance);
    }

    public override Task<StaleCleanup> CleanupStaleAsync() => Task.FromResult(new StaleCleanup(0, 0));
}
