using Connect.Abstractions;
using Connect.Core.Hosting;
using Connect.Grains.Processes;

namespace Connect.Grains.Cluster;

/// <summary>
/// The face of one node's processes, activated on that node only (see <see cref="INodeGrain"/>). Reentrant: it keeps
/// no state, and a stop waiting for a process to exit must not hold up a listing that an adopting ContentGrain awaits.
/// </summary>
[NodePlacement]
[Orleans.Concurrency.Reentrant]
[Orleans.Placement.Immovable]
public sealed class NodeGrain(IProcessHost host, LocalNode node) : Grain, INodeGrain
{
    public Task<IReadOnlyList<ProcessEndpoint>> ListProcessesAsync(Guid content)
    {
        IReadOnlyList<ProcessEndpoint> processes = host.ListProcesses(content)
            .Select(p => new ProcessEndpoint(p.Id, p.JobKey, node.Silo, p.Port, p.BundleId, node.Name, node.InternalUrl))
            .ToArray();
        return Task.FromResult(processes);
    }

    // Waiting for the process to exit is the host's business, off the grain scheduler.
    public Task StopProcessAsync(Guid processId) => Task.Run(() => host.StopAsync(processId));
}
