using System.Globalization;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

/// <summary>
/// Limits through a delegated cgroup v2 subtree: the server's own cgroup (or Applications:CgroupRoot), with the
/// server moved into the leaf "&lt;root&gt;/server" and each scope at "&lt;root&gt;/content/&lt;name&gt;". Works without
/// root when the subtree is delegated (systemd: Delegate=yes).
/// </summary>
public sealed class CgroupV2Limiter : ResourceLimiter
{
    internal const string MountPoint = "/sys/fs/cgroup";
    internal const string ServerLeaf = "server";
    internal const string ContentDirectory = "content";

    private readonly string _content;
    private readonly bool _cpu;
    private readonly ILogger _logger;

    private CgroupV2Limiter(string root, bool cpu, ILogger logger)
    {
        Root = root;
        _content = Path.Combine(root, ContentDirectory);
        _cpu = cpu;
        _logger = logger;
        Notes =
        [
            "memory: memory.max caps the tree's memory (page cache and kernel memory included) and memory.swap.max=0 keeps it from moving into swap; the kernel OOM-kills inside the tree when it is exceeded.",
            cpu
                ? "cpu: cpu.max caps the tree's CPU time per 100 ms period."
                : "cpu: NOT enforced, the cpu controller is not available in the delegated subtree.",
            "processes: pids.max caps the tree's processes and threads (fork-bomb guard).",
            "every scope's processes are killed on stop (cgroup.kill), also those that left the process group; scopes left by a previous run are killed at start.",
        ];
    }

    public override string Mechanism => "cgroup v2";

    public override IReadOnlyList<string> Notes { get; }

    /// <summary>The delegated subtree: holds "server" (this process) and "content" (one cgroup per scope).</summary>
    public string Root { get; }

    internal static CgroupV2Limiter? TryCreate(string mountPoint, string? configuredRoot, ILogger logger, out string reason)
    {
        if (!File.Exists(Path.Combine(mountPoint, "cgroup.controllers")))
        {
            reason = $"{mountPoint} is not a cgroup v2 (unified) mount";
            return null;
        }
        var own = OwnCgroup(Cgroups.TryRead("/proc/self/cgroup") ?? "");
        if (own is null && string.IsNullOrWhiteSpace(configuredRoot))
        {
            reason = "/proc/self/cgroup has no cgroup v2 entry";
            return null;
        }
        var root = ResolveRoot(mountPoint, configuredRoot, own ?? "/");
        try
        {
            return SetUp(root, Path.Combine(mountPoint, (own ?? "/").TrimStart('/')), logger, out reason);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            reason = $"cannot set up {root}: {e.Message}";
            return null;
        }
    }

    private static CgroupV2Limiter? SetUp(string root, string ownDirectory, ILogger logger, out string reason)
    {
        var available = Cgroups.TryRead(Path.Combine(root, "cgroup.controllers"));
        if (available is null)
        {
            reason = $"{root} is not a cgroup";
            return null;
        }
        var (enable, missing) = Controllers(available);
        if (missing.Count > 0)
        {
            reason = $"{root} lacks the {string.Join(" and ", missing)} controller(s); delegate them (systemd: Delegate=yes)";
            return null;
        }

        // No internal processes: a non-root cgroup with members cannot hand controllers to its children. When the root
        // is our own cgroup, everything in it (this server, and whatever shares its cgroup) moves to a leaf first.
        var server = Path.Combine(root, ServerLeaf);
        if (SameDirectory(root, ownDirectory))
        {
            Directory.CreateDirectory(server);
            var moved = 0;
            foreach (var pid in Cgroups.ReadProcs(root))
            {
                try
                {
                    Cgroups.Write(Path.Combine(server, "cgroup.procs"), pid.ToString(CultureInfo.InvariantCulture));
                    moved++;
                }
                catch (IOException)
                {
                    // Exited meanwhile, or a kernel thread that cannot move; the subtree_control write below tells.
                }
            }
            LimitsLog.ServerMoved(logger, moved, server);
        }

        var subtree = SubtreeControl(enable);
        var content = Path.Combine(root, ContentDirectory);
        try
        {
            Cgroups.Write(Path.Combine(root, "cgroup.subtree_control"), subtree);
            Directory.CreateDirectory(content);
            Cgroups.Write(Path.Combine(content, "cgroup.subtree_control"), subtree);
        }
        catch (IOException e)
        {
            reason = $"cannot enable '{subtree}' below {root} (is it delegated, and are its processes all in leaves?): {e.Message}";
            return null;
        }

        reason = "";
        var cpu = enable.Contains("cpu");
        if (!cpu)
        {
            LimitsLog.CpuNotEnforced(logger, $"{root} lacks the cpu controller");
        }
        return new CgroupV2Limiter(root, cpu, logger);
    }

    /// <summary>The cgroup v2 path ("0::&lt;path&gt;") of a /proc/&lt;pid&gt;/cgroup file; null when it has none.</summary>
    internal static string? OwnCgroup(string procCgroup)
    {
        foreach (var line in procCgroup.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            if (line.StartsWith("0::", StringComparison.Ordinal))
            {
                var path = line[3..].Trim();
                // A cgroup removed under us reads "/path (deleted)": no subtree can be set up there.
                return path.StartsWith('/') && !path.EndsWith(" (deleted)", StringComparison.Ordinal) ? path : null;
            }
        }
        return null;
    }

    /// <summary>
    /// The delegated root: the configured one (absolute, or relative to the mount), else the server's own cgroup; when
    /// the server already sits in its "server" leaf (a second start in one process), the leaf's parent.
    /// </summary>
    internal static string ResolveRoot(string mountPoint, string? configuredRoot, string ownCgroup)
    {
        if (!string.IsNullOrWhiteSpace(configuredRoot))
        {
            var configured = configuredRoot.Trim();
            return Path.TrimEndingDirectorySeparator(configured.StartsWith(mountPoint + "/", StringComparison.Ordinal) || configured == mountPoint
                ? configured
                : Path.Combine(mountPoint, configured.TrimStart('/')));
        }
        var own = Path.TrimEndingDirectorySeparator(Path.Combine(mountPoint, ownCgroup.TrimStart('/')));
        return Path.GetFileName(own) == ServerLeaf && own != Path.Combine(mountPoint, ServerLeaf) ? Path.GetDirectoryName(own)! : own;
    }

    /// <summary>Which of memory, pids, cpu to enable from a cgroup.controllers line, and which required ones are missing.</summary>
    internal static (List<string> Enable, List<string> Missing) Controllers(string cgroupControllers)
    {
        var available = cgroupControllers.Split([' ', '\n'], StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
        var enable = new List<string>();
        var missing = new List<string>();
        foreach (var controller in new[] { "memory", "pids" })
        {
            (available.Contains(controller) ? enable : missing).Add(controller);
        }
        if (available.Contains("cpu"))
        {
            enable.Add("cpu");
        }
        return (enable, missing);
    }

    internal static string SubtreeControl(IEnumerable<string> controllers) => string.Join(' ', controllers.Select(c => "+" + c));

    /// <summary>cpu.max: "&lt;quota&gt; &lt;period&gt;" in microseconds.</summary>
    internal static string CpuMax(double cpus) =>
        string.Create(CultureInfo.InvariantCulture, $"{Cgroups.CpuQuotaMicroseconds(cpus)} {Cgroups.CpuPeriodMicroseconds}");

    /// <summary>The control files and values a scope with <paramref name="limits"/> gets; unset limits stay "max".</summary>
    internal static List<(string File, string Value)> ControlWrites(ResourceLimits limits, bool cpu, bool swap)
    {
        var writes = new List<(string, string)>();
        if (limits.MemoryBytes is { } bytes)
        {
            writes.Add(("memory.max", bytes.ToString(CultureInfo.InvariantCulture)));
            if (swap)
            {
                writes.Add(("memory.swap.max", "0"));
            }
        }
        if (limits.MaxProcesses is { } max)
        {
            writes.Add(("pids.max", max.ToString(CultureInfo.InvariantCulture)));
        }
        if (limits.Cpus is { } cpus && cpu)
        {
            writes.Add(("cpu.max", CpuMax(cpus)));
        }
        return writes;
    }

    internal string ScopeDirectory(string name) => Path.Combine(_content, name);

    public override LimitScope Create(string name, ResourceLimits limits)
    {
        Cgroups.ValidateName(name);
        ArgumentNullException.ThrowIfNull(limits);

        var directory = ScopeDirectory(name);
        try
        {
            Directory.CreateDirectory(directory);
            // memory.swap.max only exists when the kernel accounts swap (CONFIG_MEMCG_SWAP, not disabled at boot).
            var swap = File.Exists(Path.Combine(directory, "memory.swap.max"));
            foreach (var (file, value) in ControlWrites(limits, _cpu, swap))
            {
                Cgroups.Write(Path.Combine(directory, file), value);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Cgroups.TryRemoveNow(directory);
            throw new InvalidOperationException($"Could not set up resource limit scope '{name}': {e.Message}", e);
        }
        return new LimitScope(name, limits, new CgroupScopeBackend(version2: true, [directory], directory, directory, limits, _logger));
    }

    public override async Task<StaleCleanup> CleanupStaleAsync()
    {
        if (!Directory.Exists(_content))
        {
            return new StaleCleanup(0, 0);
        }
        var killed = 0;
        var scopes = Directory.EnumerateDirectories(_content).ToList();
        foreach (var scope in scopes)
        {
            var all = Cgroups.DescendantsDeepestFirst(scope).Append(scope).ToList();
            killed += await Cgroups.KillAllAsync(all, useCgroupKill: true, _logger).ConfigureAwait(false);
            foreach (var directory in all)
            {
                await Cgroups.RemoveAsync(directory, _logger).ConfigureAwait(false);
            }
        }
        if (scopes.Count > 0)
        {
            LimitsLog.StaleKilled(_logger, killed, scopes.Count);
        }
        return new StaleCleanup(killed, scopes.Count);
    }

    private static bool SameDirectory(string a, string b) =>
        string.Equals(Path.TrimEndingDirectorySeparator(a), Path.TrimEndingDirectorySeparator(b), StringComparison.Ordinal);
}
