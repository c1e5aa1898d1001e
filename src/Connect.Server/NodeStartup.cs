using Connect.Abstractions;
using Connect.Data;
using Connect.Grains.Processes;
using Connect.Runtime.Supervision;

namespace Connect.Server;

/// <summary>
/// Runs once the silo is up: closes the books on processes a previous run of this node left behind, wires the
/// supervisor to the grains, and starts the processes that content asks to keep running (min_processes).
/// </summary>
public sealed partial class NodeStartup(
    ICatalogStore store,
    ProcessSupervisor supervisor,
    GrainProcessOwner owner,
    ContentProcessHost host,
    IGrainFactory grains,
    TimeProvider time,
    ILogger<NodeStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        supervisor.SetOwner(owner);
        var orphans = await store.FinishOrphanedJobsAsync(host.NodeName, time.GetUtcNow(), cancellationToken);
        if (orphans > 0)
        {
            LogOrphans(logger, orphans);
        }
        foreach (var item in await store.ListContentNeedingProcessesAsync(cancellationToken))
        {
            await grains.GetGrain<IContentGrain>(item.Guid).EnsureMinimumAsync();
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await supervisor.DisposeAsync();

    [LoggerMessage(Level = LogLevel.Information, Message = "Marked {Count} jobs of a previous run of this node as finished")]
    private static partial void LogOrphans(ILogger logger, int count);
}
