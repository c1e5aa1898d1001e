using Connect.Abstractions;
using Connect.Runtime.Supervision;
using Orleans.Placement;

namespace Connect.Grains.Processes;

/// <summary>
/// The grain face of one OS process. Activated next to the ContentGrain that asks for it (placement across
/// silos by load comes with the full scheduler) and immovable, since the process cannot follow a migration.
/// </summary>
[PreferLocalPlacement]
[Immovable]
public sealed class ProcessGrain(ContentProcessHost host, ProcessSupervisor supervisor, ILocalSiloDetails silo) : Grain, IProcessGrain
{
    private ProcessStartResult? _result;

    public async Task<ProcessStartResult> StartAsync(ProcessStartRequest request)
    {
        if (_result is not null)
        {
            return _result;
        }
        // Launching touches files and forks; the supervisor then watches the process for its lifetime. None of that
        // belongs on this grain's scheduler, which would also stop serving the watcher once the grain deactivates.
        var processId = this.GetPrimaryKey();
        var siloName = silo.SiloAddress.ToParsableString();
        _result = await Task.Run(() => host.StartAsync(processId, request, siloName, CancellationToken.None));
        if (!_result.Started)
        {
            DeactivateOnIdle();
        }
        return _result;
    }

    public async Task StopAsync()
    {
        var processId = this.GetPrimaryKey();
        await Task.Run(() => supervisor.StopAsync(processId));
        DeactivateOnIdle();
    }
}
