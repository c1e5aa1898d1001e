using Connect.Abstractions;
using Connect.Data;
using Connect.Data.Security;
using Connect.Runtime.Supervision;

namespace Connect.Grains.Processes;

/// <summary>Relays the supervisor's node-local events to the ContentGrain that owns each process.</summary>
public sealed class GrainProcessOwner(IGrainFactory grains, ICatalogStore store, ApiKeyCache keys, TimeProvider time) : IProcessOwner
{
    public Task<bool> MayStopIdleAsync(SupervisedProcess process) =>
        grains.GetGrain<IContentGrain>(process.ContentGuid).ProcessIdleAsync(process.Id);

    public async Task OnExitedAsync(SupervisedProcess process, int? exitCode)
    {
        await store.FinishJobAsync(process.JobKey, exitCode, time.GetUtcNow());
        // The process's own key dies with it.
        await store.DeleteApiKeysNamedAsync(ApiKeys.ProcessKeyName(process.JobKey));
        keys.InvalidateAll();
        await grains.GetGrain<IContentGrain>(process.ContentGuid).ProcessExitedAsync(process.Id, exitCode,
            ExitMessage(exitCode, process.ExitReason), process.Handle.Log.Tail(50));
    }

    private static string ExitMessage(int? exitCode, string? reason) =>
        $"the process exited with code {exitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "unknown"}" + (reason is null ? "" : $" ({reason})");
}
