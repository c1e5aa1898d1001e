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
}
