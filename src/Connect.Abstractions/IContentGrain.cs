using Connect.Core.Model;

namespace Connect.Abstractions;

/// <summary>
/// One per content item, keyed by its GUID. Owns the item's settings row (single writer), its scaling policy
/// and its processes: it decides when a process starts or stops and which process takes a new connection.
/// It also runs the item's deployments, one at a time.
/// </summary>
[Alias("Connect.IContentGrain")]
public interface IContentGrain : IGrainWithGuidKey
{
    /// <summary>Writes new settings over the row version the caller read and merged onto.</summary>
    /// <exception cref="ContentNotFoundException"/>
    /// <exception cref="ContentConflictException">a name clash, or the row changed since <paramref name="expectedVersion"/></exception>
    [Alias("UpdateSettings")]
    Task<ContentItem> UpdateSettingsAsync(ContentSettings settings, long expectedVersion);

    /// <summary>Removes a bundle that is neither active nor being deployed, with its files.</summary>
    /// <exception cref="ContentConflictException"/>
    [Alias("DeleteBundle")]
    Task DeleteBundleAsync(long bundleId);

    /// <summary>Stops every process, removes the catalog row and the item's files.</summary>
    [Alias("Delete")]
    Task DeleteAsync();

    /// <summary>Queues a deployment of the bundle; returns the id of the task that reports it.</summary>
    [Alias("Deploy")]
    Task<string> DeployAsync(long bundleId, Guid? userGuid);

    /// <summary>
    /// Finds a process for a new connection. <paramref name="saturated"/> lists processes the caller saw at or
    /// above the load factor; the grain prefers any other live or starting process, then starts a new one
    /// while under max_processes.
    /// </summary>
    [Alias("AcquireProcess")]
    Task<ProcessRoute> AcquireProcessAsync(IReadOnlyList<Guid> saturated);

    /// <summary>The item's processes and policy, starting nothing (the front end's lookup of a pinned session's process).</summary>
    /// <exception cref="ContentNotFoundException"/>
    [Alias("GetRoute")]
    Task<ProcessRoute> GetRouteAsync();

    /// <summary>The processes currently running or starting.</summary>
    [Alias("GetProcesses")]
    Task<IReadOnlyList<ProcessEndpoint>> GetProcessesAsync();

    /// <summary>Asked by a node's supervisor when a process has been idle for idle_timeout; true = stop it.</summary>
    [Alias("ProcessIdle")]
    Task<bool> ProcessIdleAsync(Guid processId);

    /// <summary>A process exited or was stopped; <paramref name="message"/> and <paramref name="logTail"/> say how, for a crash page.</summary>
    [Alias("ProcessExited")]
    Task ProcessExitedAsync(Guid processId, int? exitCode, string message, IReadOnlyList<string> logTail);

    /// <summary>Stops the process of a job (the jobs API's DELETE).</summary>
    [Alias("StopJob")]
    Task<bool> StopJobAsync(string jobKey);

    /// <summary>Stops every process so that new ones pick up changed settings or environment variables.</summary>
    [Alias("Restart")]
    Task RestartAsync();

    /// <summary>Starts processes up to min_processes (server start, settings change).</summary>
    [Alias("EnsureMinimum")]
    Task EnsureMinimumAsync();

    /// <summary>
    /// A silo left the cluster (it died, or it drained and stopped): its processes are gone. The grain forgets them
    /// without counting a failure and restores min_processes on the survivors.
    /// </summary>
    [Alias("NodeLost")]
    Task NodeLostAsync(string silo);

    /// <summary>
    /// A front end could not connect to the node running this process. The grain asks that node itself; if the node
    /// refuses the connection too (its process is gone), its processes are dropped at once, without waiting for the
    /// membership to declare it dead. A node that is only slow keeps its processes.
    /// </summary>
    [Alias("ReportUnreachable")]
    Task ReportUnreachableAsync(Guid processId);

    /// <summary>Whether the item is crash-looping (repeated failures within the window); null when it is not.</summary>
    [Alias("GetCrashLoop")]
    Task<CrashLoopState?> GetCrashLoopAsync();
}

/// <summary>Content whose processes keep failing: no new start happens before <see cref="HoldUntil"/>.</summary>
[GenerateSerializer, Immutable, Alias("Connect.CrashLoopState")]
public sealed record CrashLoopState(
    [property: Id(0)] DateTimeOffset Since,
    [property: Id(1)] int Failures,
    [property: Id(2)] string LastError,
    [property: Id(3)] DateTimeOffset HoldUntil);

/// <summary>A running process of an item and where it runs: the front end forwards to it locally or over the internal hop.</summary>
[GenerateSerializer, Immutable, Alias("Connect.ProcessEndpoint")]
public sealed record ProcessEndpoint(
    [property: Id(0)] Guid ProcessId,
    [property: Id(1)] string JobKey,
    /// <summary>The silo the process runs on (its parsable address), compared with the membership to tell whether it is alive.</summary>
    [property: Id(2)] string Silo,
    [property: Id(3)] int Port,
    [property: Id(4)] long BundleId,
    /// <summary>The node's name (jobs, logs).</summary>
    [property: Id(5)] string Node,
    /// <summary>Where other nodes reach that node's front end for the internal hop.</summary>
    [property: Id(6)] string InternalUrl);

/// <summary>What the front end needs to forward a connection or explain why it cannot.</summary>
[GenerateSerializer, Immutable, Alias("Connect.ProcessRoute")]
public sealed record ProcessRoute
{
    [Id(0)] public ProcessEndpoint? Process { get; init; }
    /// <summary>Every process of the item, so the front end can pick the least loaded when all are saturated.</summary>
    [Id(1)] public IReadOnlyList<ProcessEndpoint> All { get; init; } = [];
    [Id(2)] public ScalingPolicy? Policy { get; init; }
    /// <summary>Why no process could be had (start failure, no active bundle); null when at capacity or fine.</summary>
    [Id(3)] public string? Error { get; init; }
    [Id(4)] public IReadOnlyList<string> LogTail { get; init; } = [];
    /// <summary>Set with <see cref="Error"/> when the item is crash-looping: the front end answers 503, not 502.</summary>
    [Id(5)] public bool CrashLoop { get; init; }
}

[GenerateSerializer, Alias("Connect.ContentNotFoundException")]
public sealed class ContentNotFoundException : Exception
{
    public ContentNotFoundException() { }
    public ContentNotFoundException(string message) : base(message) { }
}

[GenerateSerializer, Alias("Connect.ContentConflictException")]
public sealed class ContentConflictException : Exception
{
    public ContentConflictException() { }
    public ContentConflictException(string message) : base(message) { }
}
