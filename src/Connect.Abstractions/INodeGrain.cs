namespace Connect.Abstractions;

/// <summary>
/// One per silo, keyed by the silo's parsable address and always activated on that silo: the way to ask a
/// node's supervisor which processes it runs. A ContentGrain that is activated anew (its silo died, or it was
/// collected) rebuilds its view of the item's processes from the nodes, which are the truth about what runs where.
/// </summary>
[Alias("Connect.INodeGrain")]
public interface INodeGrain : IGrainWithStringKey
{
    /// <summary>The ready processes of this content item on this node.</summary>
    [Alias("ListProcesses")]
    Task<IReadOnlyList<ProcessEndpoint>> ListProcessesAsync(Guid content);

    /// <summary>
    /// Stops a process this node runs (nothing if it does not). The way to stop a running process: its process grain
    /// may have been collected since it started, and a new activation of it would be placed on whichever node is least
    /// loaded by then, not necessarily this one.
    /// </summary>
    [Alias("StopProcess")]
    Task StopProcessAsync(Guid processId);
}
