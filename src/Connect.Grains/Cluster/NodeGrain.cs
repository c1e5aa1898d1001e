using Connect.Abstractions;
using Connect.Core.Hosting;
using Connect.Runtime.Supervision;

namespace Connect.Grains.Cluster;

/// <summary>The face of one node's supervisor, activated on that node only (see <see cref="INodeGrain"/>).</summary>
[NodePlacement]
[Orleans.Placement.Immovable]
public sealed class NodeGrain(ProcessSupervisor supervisor, LocalNode node) : Grain, INodeGrain
{
    public Task<IReadOnlyList<ProcessEndpoint>> ListProcessesAsync(Guid content)
    {
        IReadOnlyList<ProcessEndpoint> processes = supervisor.Processes
            .Where(p => p.ContentGuid == content && !p.StopRequested && !p.Handle.HasExited)
            .Select(p => new ProcessEndpoint(p.Id, p.JobKey, node.Silo, p.Port, p.BundleId, node.Name, node.InternalUrl))
            .ToArray();
        return Task.FromResult(processes);
    }
}
