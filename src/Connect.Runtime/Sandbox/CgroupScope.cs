using System.Globalization;
using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

/// <summary>A scope made of cgroup directories: one for v2, one per controller hierarchy for v1.</summary>
internal sealed class CgroupScopeBackend : ILimitScopeBackend
{
    private const int SigKillExitCode = 128 + ProcessGroups.SigKill;

    private readonly bool _version2;
    private readonly string? _memoryDirectory;
    private readonly string? _pidsDirectory;
    private readonly ResourceLimits _limits;
    private readonly ILogger _logger;

    internal CgroupScopeBackend(bool version2, IReadOnlyList<string> directories, string? memoryDirectory, string? pidsDirectory,
        ResourceLimits limits, ILogger logger)
    {
        _version2 = version2;
        Paths = directories;
        _memoryDirectory = memoryDirectory;
        _pidsDirectory = pidsDirectory;
        _limits = limits;
        _logger = logger;
    }

    public IReadOnlyList<string> Paths { get; }

    public LaunchSpec Apply(LaunchSpec spec) => Cgroups.JoinThenExec(spec, Paths.Select(d => Path.Combine(d, "cgroup.procs")));

    public string? ExplainExit(int exitCode)
    {
        if (_limits.MemoryBytes is { } memory && _memoryDirectory is not null && MemoryLimitHit(exitCode))
        {
            var limit = Cgroups.FormatBytes(memory);
            return exitCode == SigKillExitCode
                ? $"the process was killed because it exceeded its memory limit of {limit}"
                : $"a process of its tree was killed because the tree exceeded its memory limit of {limit} (exit code {exitCode.ToString(CultureInfo.InvariantCulture)})";
        }

        if (_limits.MaxProcesses is { } max && _pidsDirectory is not null && exitCode != 0
            && Cgroups.ReadKeyFromFile(Path.Combine(_pidsDirectory, "pids.events"), "max") is > 0)
        {
            return $"the process tree reached its limit of {max.ToString(CultureInfo.InvariantCulture)} processes and threads, so starting more failed";
        }

        return null;
    }

    private bool MemoryLimitHit(int exitCode)
    {
        if (_version2)
        {
            // Hierarchical: counts OOM kills anywhere below, should the program have made sub-cgroups.
            return Cgroups.ReadKeyFromFile(Path.Combine(_memoryDirectory!, "memory.events"), "oom_kill") is > 0;
        }

        // oom_control's oom_kill line exists since Linux 4.13; before that a SIGKILL after the limit was hit
        // (failcnt counts charges refused at the limit) is the best evidence there is.
        var oomControl = Cgroups.TryRead(Path.Combine(_memoryDirectory!, "memory.oom_control"));
        if (oomControl is not null && Cgroups.ReadKey(oomControl, "oom_kill") is { } kills)
        {
            return kills > 0;
        }
        return exitCode == SigKillExitCode && Cgroups.ReadNumberFile(Path.Combine(_memoryDirectory!, "memory.failcnt")) is > 0;
    }

    public Task KillAllAsync() => Cgroups.KillAllAsync(Paths, useCgroupKill: _version2, _logger);

    public async Task RemoveAsync()
    {
        foreach (var directory in Paths)
        {
            foreach (var child in Cgroups.DescendantsDeepestFirst(directory))
            {
                await Cgroups.RemoveAsync(child, _logger).ConfigureAwait(false);
            }
            await Cgroups.RemoveAsync(directory, _logger).ConfigureAwait(false);
        }
    }
}
