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
    Connect.Core.Hosting.DataPaths paths,
    Connect.Runtime.Sandbox.SandboxOptions sandbox,
    IGrainFactory grains,
    TimeProvider time,
    ILogger<NodeStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        supervisor.SetOwner(owner);
        if (!sandbox.Active)
        {
            LogUnsandboxed(logger, sandbox.Bubblewrap);
        }
        foreach (var job in await store.ListActiveJobsAsync(host.NodeName, cancellationToken))
        {
            await store.DeleteApiKeysNamedAsync(Connect.Data.Security.ApiKeys.ProcessKeyName(job.Key), cancellationToken);
            if (job.Pid is { } pid && job.BundleId is { } bundleId && IsOurProcess(pid, paths.BundleDirectory(job.ContentGuid, bundleId)))
            {
                // Content processes run in their own session and outlive a crashed server: end them before anything new starts.
                try
                {
                    using var orphan = System.Diagnostics.Process.GetProcessById(pid);
                    orphan.Kill(entireProcessTree: true);
                    LogOrphanKilled(logger, pid, job.ContentGuid);
                }
                catch (Exception e) when (e is ArgumentException or InvalidOperationException or System.ComponentModel.Win32Exception)
                {
                    // Exited meanwhile.
                }
            }
        }
        var orphans = await store.FinishOrphanedJobsAsync(host.NodeName, time.GetUtcNow(), cancellationToken);
        // A deploy that was running when this node went down would otherwise be polled forever by its client.
        var interrupted = await store.FinishInterruptedTasksAsync(host.NodeName, "the server restarted while this task was running; deploy again", time.GetUtcNow(), cancellationToken);
        if (interrupted > 0)
        {
            LogInterrupted(logger, interrupted);
        }
        if (orphans > 0)
        {
            LogOrphans(logger, orphans);
        }
        foreach (var item in await store.ListContentNeedingProcessesAsync(cancellationToken))
        {
            await grains.GetGrain<IContentGrain>(item.Guid).EnsureMinimumAsync();
        }
    }

    /// <summary>A pid is reused by the OS: only a process whose command line names the job's bundle directory is the job's.</summary>
    private static bool IsOurProcess(int pid, string bundleDirectory)
    {
        try
        {
            var cmdline = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ');
            return cmdline.Contains(bundleDirectory, StringComparison.Ordinal);
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }

    public async Task StopAsync(CancellationToken cancellationToken) => await supervisor.DisposeAsync();

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content processes run WITHOUT a sandbox: they can read the data directory. Install bubblewrap ({Bubblewrap}) or set Sandbox:Mode=Required")]
    private static partial void LogUnsandboxed(ILogger logger, string bubblewrap);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killed process {Pid} of content {Content} left running by a previous run of this node")]
    private static partial void LogOrphanKilled(ILogger logger, int pid, Guid content);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Closed {Count} tasks interrupted by the previous run of this node")]
    private static partial void LogInterrupted(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Marked {Count} jobs of a previous run of this node as finished")]
    private static partial void LogOrphans(ILogger logger, int count);
}
