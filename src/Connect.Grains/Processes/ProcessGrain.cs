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
        _result = await host.StartAsync(this.GetPrimaryKey(), request, silo.SiloAddress.ToParsableString(), CancellationToken.None);
        if (!_result.Started)
        {
            DeactivateOnIdle();
        }
        return _result;
    }

    public async Task StopAsync()
    {
        await supervisor.StopAsync(this.GetPrimaryKey());
        DeactivateOnIdle();
    }
}
