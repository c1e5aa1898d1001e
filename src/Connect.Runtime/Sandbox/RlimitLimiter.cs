using System.Globalization;
using Connect.Runtime.Processes;

namespace Connect.Runtime.Sandbox;

/// <summary>
/// Per-process rlimits through util-linux prlimit, for hosts without a usable cgroup hierarchy. Much coarser than
/// cgroups: RLIMIT_AS caps each process's virtual address space (not the tree's resident memory), RLIMIT_NPROC counts
/// every process of the user, and there is no CPU rate limit and no scope to kill.
/// </summary>
public sealed class RlimitLimiter : ResourceLimiter
{
    internal const string DefaultPrlimit = "/usr/bin/prlimit";

    private readonly string _prlimit;

    internal RlimitLimiter(string prlimit)
    {
        _prlimit = prlimit;
    }

    public override string Mechanism => "rlimit";

    public override IReadOnlyList<string> Notes { get; } =
    [
        "memory: RLIMIT_AS caps each process's address space, not the tree's memory: every process of the tree may use the limit, and runtimes that reserve large virtual ranges (JVM, Go, some BLAS builds) can fail well below it; an allocation over it fails (MemoryError, ENOMEM) instead of being OOM-killed.",
        "cpu: NOT enforced (rlimits only cap total CPU seconds, not a rate).",
        "processes: RLIMIT_NPROC counts every process and thread of the run-as user, across all content items, so the process cap is shared by them all; it does not apply to root.",
        "a process that leaves its process group survives its stop (there is no scope to kill); nothing is cleaned up at start.",
    ];

    public override LimitScope Create(string name, ResourceLimits limits)
    {
        Cgroups.ValidateName(name);
        ArgumentNullException.ThrowIfNull(limits);
        return new LimitScope(name, limits, new RlimitScopeBackend(_prlimit, limits));
    }

    public override Task<StaleCleanup> CleanupStaleAsync() => Task.FromResult(new StaleCleanup(0, 0));

    /// <summary>prlimit's options for <paramref name="limits"/>; empty when nothing is limited.</summary>
    internal static List<string> Options(ResourceLimits limits)
    {
        var options = new List<string>();
        if (limits.MemoryBytes is { } bytes)
        {
            options.Add(string.Create(CultureInfo.InvariantCulture, $"--as={bytes}"));
        }
        if (limits.MaxProcesses is { } max)
        {
            options.Add(string.Create(CultureInfo.InvariantCulture, $"--nproc={max}"));
        }
        return options;
    }

    private sealed class RlimitScopeBackend(string prlimit, ResourceLimits limits) : ILimitScopeBackend
    {
        public IReadOnlyList<string> Paths => [];

        public LaunchSpec Apply(LaunchSpec spec)
        {
            var options = Options(limits);
            if (options.Count == 0)
            {
                return spec;
            }
            // prlimit sets the limits on itself, then execs the program in place (same pid); "--" ends its options.
            return spec with { FileName = prlimit, Arguments = [.. options, "--", spec.FileName, .. spec.Arguments] };
        }

        // An allocation over RLIMIT_AS fails inside the program, which reports it its own way; nothing records it.
        public string? ExplainExit(int exitCode) => null;

        public Task KillAllAsync() => Task.CompletedTask;

        public Task RemoveAsync() => Task.CompletedTask;
    }
}
