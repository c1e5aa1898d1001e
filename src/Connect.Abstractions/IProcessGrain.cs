namespace Connect.Abstractions;

/// <summary>
/// The face of one OS process of a content item. Placed on a silo when activated and never moved: the OS
/// process belongs to that node's supervisor, and the grain only relays to it.
/// </summary>
[Alias("Connect.IProcessGrain")]
public interface IProcessGrain : IGrainWithGuidKey
{
    [Alias("Start")]
    Task<ProcessStartResult> StartAsync(ProcessStartRequest request);

    [Alias("Stop")]
    Task StopAsync();
}

[GenerateSerializer, Immutable, Alias("Connect.ProcessStartRequest")]
public sealed record ProcessStartRequest(
    [property: Id(0)] Guid ContentGuid,
    [property: Id(1)] long BundleId,
    [property: Id(2)] string JobKey,
    [property: Id(3)] TimeSpan InitTimeout,
    [property: Id(4)] TimeSpan IdleTimeout);

[GenerateSerializer, Immutable, Alias("Connect.ProcessStartResult")]
public sealed record ProcessStartResult
{
    [Id(0)] public bool Started { get; init; }
    [Id(1)] public string Silo { get; init; } = "";
    [Id(2)] public int Port { get; init; }
    [Id(3)] public int Pid { get; init; }
    [Id(4)] public string? Error { get; init; }
    [Id(5)] public IReadOnlyList<string> LogTail { get; init; } = [];
    /// <summary>The node's name and internal URL (see <see cref="ProcessEndpoint"/>).</summary>
    [Id(6)] public string Node { get; init; } = "";
    [Id(7)] public string InternalUrl { get; init; } = "";
    /// <summary>
    /// Not the content's fault: the chosen node could not take the process (at its process limit, draining, gone).
    /// The ContentGrain places it again elsewhere instead of counting a failure.
    /// </summary>
    [Id(8)] public bool NodeUnavailable { get; init; }
}
