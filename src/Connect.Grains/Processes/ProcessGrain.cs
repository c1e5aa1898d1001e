using Connect.Abstractions;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Grains.Cluster;
using Microsoft.Extensions.Options;

namespace Connect.Grains.Processes;

/// <summary>
/// The grain face of one OS process. Placed on the least-loaded node that can take it and immovable, since the
/// process cannot follow a migration: the node's process host owns the process, the grain only relays to it.
/// </summary>
[LeastLoadedPlacement]
[Orleans.Placement.Immovable]
public sealed class ProcessGrain(IProcessHost host, LocalNode node, IOptions<SchedulerDefaults> scheduler) : Grain, IProcessGrain
{
    private ProcessStartResult? _result;

    public async Task<ProcessStartResult> StartAsync(ProcessStartRequest request)
    {
        if (_result is not null)
        {
            return _result;
        }
        // Placement read a registry up to a heartbeat old: the node itself has the last word.
        if (node.Draining || host.Count >= scheduler.Value.MaxProcessesPerNode)
        {
            DeactivateOnIdle();
            return new ProcessStartResult
            {
                Started = false,
                NodeUnavailable = true,
                // Named so that the ContentGrain's placement leaves this node out of the retry.
                Silo = node.Silo,
                Node = node.Name,
                Error = node.Draining ? $"node {node.Name} is draining" : $"node {node.Name} runs its maximum of {scheduler.Value.MaxProcessesPerNode} processes",
            };
        }
        // Launching touches files and forks; the supervisor then watches the process for its lifetime. None of that
        // belongs on this grain's scheduler, which would also stop serving the watcher once the grain deactivates.
        var processId = this.GetPrimaryKey();
        _result = await Task.Run(() => host.StartAsync(processId, request, node.Silo, CancellationToken.None));
        if (!_result.Started)
        {
            DeactivateOnIdle();
        }
        return _result;
    }

    public async Task StopAsync()
    {
        var processId = this.GetPrimaryKey();
        await Task.Run(() => host.StopAsync(processId));
        DeactivateOnIdle();
    }
}
