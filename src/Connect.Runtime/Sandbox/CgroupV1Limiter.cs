using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

/// <summary>
/// Limits through cgroup v1 hierarchies (memory, pids and, when mounted, cpu), each scope being
/// "&lt;controller&gt;/&lt;root&gt;/&lt;node&gt;/&lt;name&gt;". Needs root: v1 has no safe delegation, and joining a
/// group means writing its cgroup.procs.
/// </summary>
public sealed class CgroupV1Limiter : ResourceLimiter
{
    internal const string MountPoint = "/sys/fs/cgroup";
    internal const string DefaultRoot = "connect";

    private readonly string _memory;
    private readonly string _pids;
    private readonly string? _cpu;
    private readonly bool _memsw;
    private readonly ILogger _logger;

    private CgroupV1Limiter(string memory, string pids, string? cpu, bool memsw, ILogger logger)
    {
        _memory = memory;
        _pids = pids;
        _cpu = cpu;
        _memsw = memsw;
        _logger = logger;
        Notes =
        [
            memsw
                ? "memory: memory.limit_in_bytes and memory.memsw.limit_in_bytes cap the tree's RAM plus swap (page cache included); the kernel OOM-kills inside the tree when it is exceeded."
                : "memory: memory.limit_in_bytes caps the tree's RAM (page cache included); swap is not capped (no swap accounting, memory.memsw.* is missing), so a tree may push memory into swap beyond the limit.",
            cpu is not null
                ? "cpu: cpu.cfs_quota_us per 100 ms cpu.cfs_period_us caps the tree's CPU time."
                : "cpu: NOT enforced, the v1 cpu controller is not mounted at /sys/fs/cgroup/cpu.",
            "processes: pids.max caps the tree's processes and threads (fork-bomb guard).",
            "every scope's processes are killed on stop, also those that left the process group; scopes left by a previous run are killed at start.",
        ];
    }

    public override string Mechanism => "cgroup v1";

    public override IReadOnlyList<string> Notes { get; }

    /// <summary>The per-node directories scopes are made in, memory and pids first, then cpu when mounted.</summary>
    internal IReadOnlyList<string> NodeDirectories => _cpu is null ? [_memory, _pids] : [_memory, _pids, _cpu];

    /// <summary>
    /// Sets up "&lt;controller&gt;/&lt;root&gt;/&lt;node&gt;" under <paramref name="mountPoint"/>, <paramref name="root"/>
    /// being a path relative to each hierarchy (default "connect"). Null, with the reason, when not root or the memory
    /// or pids hierarchy is missing or not writable.
    /// </summary>
    internal static CgroupV1Limiter? TryCreate(string mountPoint, string? root, string nodeName, ILogger logger, out string reason)
    {
        if (!Environment.IsPrivilegedProcess)
        {
            reason = "the server is not running as root";
            return null;
        }

        var relative = RelativeRoot(root, nodeName);
        var memory = SetUpHierarchy(mountPoint, "memory", "memory.limit_in_bytes", relative, out reason);
        if (memory is null)
        {
            return null;
        }
        var pids = SetUpHierarchy(mountPoint, "pids", "pids.max", relative, out reason);
        if (pids is null)
        {
            return null;
        }
        var cpu = SetUpHierarchy(mountPoint, "cpu", "cpu.cfs_quota_us", relative, out var cpuReason);
        if (cpu is null)
        {
            LimitsLog.CpuNotEnforced(logger, cpuReason);
        }

        reason = "";
        return new CgroupV1Limiter(memory, pids, cpu, File.Exists(Path.Combine(memory, "memory.memsw.limit_in_bytes")), logger);
    }

    /// <summary>"&lt;root&gt;/&lt;node&gt;" relative to a hierarchy; a leading '/' in the configured root is ignored.</summary>
    internal static string RelativeRoot(string? root, string nodeName)
    {
        var trimmed = string.IsNullOrWhiteSpace(root) ? DefaultRoot : root.Trim().Trim('/');
        if (trimmed.Length == 0 || trimmed.Split('/').Any(s => s is "" or "." or ".."))
        {
            throw new ArgumentException($"Applications:CgroupRoot '{root}' is not a relative cgroup path.", nameof(root));
        }
        return trimmed + "/" + nodeName;
    }

    private static string? SetUpHierarchy(string mountPoint, string controller, string controlFile, string relative, out string reason)
    {
        var hierarchy = Path.Combine(mountPoint, controller);
        // A directory without cgroup.procs is not a cgroup mount (e.g. the tmpfs under it): creating groups there would
        // make plain directories that limit nothing.
        if (!File.Exists(Path.Combine(hierarchy, "cgroup.procs")))
        {
            reason = $"{hierarchy} is not a mounted cgroup v1 hierarchy";
            return null;
        }
        var directory = Path.Combine(hierarchy, relative);
        try
        {
            Directory.CreateDirectory(directory);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = $"cannot create {directory}: {e.Message}";
            return null;
        }
        if (!File.Exists(Path.Combine(directory, controlFile)))
        {
            reason = $"{hierarchy} does not carry the {controller} controller ({controlFile} is missing)";
            return null;
        }
        reason = "";
        return directory;
    }

    public override LimitScope Create(string name, ResourceLimits limits)
    {
        Cgroups.ValidateName(name);
        ArgumentNullException.ThrowIfNull(limits);

        var memory = Path.Combine(_memory, name);
        var pids = Path.Combine(_pids, name);
        var cpu = _cpu is null ? null : Path.Combine(_cpu, name);
        List<string> directories = cpu is null ? [memory, pids] : [memory, pids, cpu];
        var backend = new CgroupScopeBackend(version2: false, directories, memory, pids, limits, _logger);
        try
        {
            foreach (var directory in directories)
            {
                Directory.CreateDirectory(directory);
            }
            if (limits.MemoryBytes is { } bytes)
            {
                var value = bytes.ToString(CultureInfo.InvariantCulture);
                // RAM first: the kernel refuses a memsw limit below the memory limit.
                Cgroups.Write(Path.Combine(memory, "memory.limit_in_bytes"), value);
                if (_memsw)
                {
                    Cgroups.Write(Path.Combine(memory, "memory.memsw.limit_in_bytes"), value);
                }
            }
            if (limits.MaxProcesses is { } max)
            {
                Cgroups.Write(Path.Combine(pids, "pids.max"), max.ToString(CultureInfo.InvariantCulture));
            }
            if (limits.Cpus is { } cpus && cpu is not null)
            {
                Cgroups.Write(Path.Combine(cpu, "cpu.cfs_period_us"), Cgroups.CpuPeriodMicroseconds.ToString(CultureInfo.InvariantCulture));
                Cgroups.Write(Path.Combine(cpu, "cpu.cfs_quota_us"), Cgroups.CpuQuotaMicroseconds(cpus).ToString(CultureInfo.InvariantCulture));
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Nothing has joined yet, so the directories can go at once.
            foreach (var directory in directories)
            {
                Cgroups.TryRemoveNow(directory);
            }
            throw new InvalidOperationException($"Could not set up resource limit scope '{name}': {e.Message}", e);
        }
        return new LimitScope(name, limits, backend);
    }

    public override async Task<StaleCleanup> CleanupStaleAsync()
    {
        var names = NodeDirectories
            .Where(Directory.Exists)
            .SelectMany(Directory.EnumerateDirectories)
            .Select(Path.GetFileName)
            .OfType<string>()
            .Distinct(StringComparer.Ordinal)
            .ToList();

        var killed = 0;
        foreach (var name in names)
        {
            var directories = NodeDirectories.Select(d => Path.Combine(d, name)).Where(Directory.Exists).ToList();
            var all = directories.SelectMany(d => Cgroups.DescendantsDeepestFirst(d).Append(d)).ToList();
            killed += await Cgroups.KillAllAsync(all, useCgroupKill: false, _logger).ConfigureAwait(false);
            foreach (var directory in all)
            {
                await Cgroups.RemoveAsync(directory, _logger).ConfigureAwait(false);
            }
        }
        if (killed > 0 || names.Count > 0)
        {
            LimitsLog.StaleKilled(_logger, killed, names.Count);
        }
        return new StaleCleanup(killed, names.Count);
    }
}
