using Connect.Runtime.Processes;

namespace Connect.Runtime.Sandbox;

/// <summary>
/// The limits of one content process tree. <see cref="Apply"/> wraps its launch so the process enters the scope before
/// the program runs; disposing kills whatever is left in the scope and removes it.
/// </summary>
public sealed class LimitScope : IAsyncDisposable
{
    private readonly ILimitScopeBackend _backend;
    private readonly Lock _disposeGate = new();
    private Task? _dispose;

    internal LimitScope(string name, ResourceLimits limits, ILimitScopeBackend backend)
    {
        Name = name;
        Limits = limits;
        _backend = backend;
    }

    public string Name { get; }

    public ResourceLimits Limits { get; }

    /// <summary>The cgroup directories of this scope (one per v1 hierarchy, one under v2); empty for rlimit and none.</summary>
    public IReadOnlyList<string> Paths => _backend.Paths;

    /// <summary>
    /// <paramref name="spec"/> with its program started through a wrapper that enters this scope first (then execs it,
    /// keeping the pid). Working directory, environment, log file and environment inheritance are kept. Apply it last
    /// (outermost), while the launch still runs as root. A cgroup wrapper exits 125, with a line on stderr, when the
    /// process cannot join the scope; the program is not started then.
    /// </summary>
    public LaunchSpec Apply(LaunchSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        return _backend.Apply(spec);
    }

    /// <summary>
    /// Why a process of this scope ended with <paramref name="exitCode"/>, when the scope recorded a limit being hit
    /// (e.g. the memory controller's OOM kill); null when nothing explains it. Call before disposing the scope.
    /// </summary>
    public string? ExplainExit(int exitCode) => _backend.ExplainExit(exitCode);

    /// <summary>SIGKILLs every process left in the scope, including those that left the process group or session.</summary>
    public Task KillAllAsync() => _backend.KillAllAsync();

    /// <summary>Kills what is left and removes the scope. Idempotent.</summary>
    public ValueTask DisposeAsync()
    {
        lock (_disposeGate)
        {
            return new ValueTask(_dispose ??= DisposeCoreAsync());
        }
    }

    private async Task DisposeCoreAsync()
    {
        await _backend.KillAllAsync().ConfigureAwait(false);
        await _backend.RemoveAsync().ConfigureAwait(false);
    }
}

internal interface ILimitScopeBackend
{
    IReadOnlyList<string> Paths { get; }

    LaunchSpec Apply(LaunchSpec spec);

    string? ExplainExit(int exitCode);

    Task KillAllAsync();

    Task RemoveAsync();
}

/// <summary>Nothing to join or clean up: the process group kill of the process handle is all there is.</summary>
internal sealed class NoScopeBackend : ILimitScopeBackend
{
    public static NoScopeBackend Instance { get; } = new();

    public IReadOnlyList<string> Paths => [];

    public LaunchSpec Apply(LaunchSpec spec) => spec;

    public string? ExplainExit(int exitCode) => null;

    public Task KillAllAsync() => Task.CompletedTask;

    public Task RemoveAsync() => Task.CompletedTask;
}
