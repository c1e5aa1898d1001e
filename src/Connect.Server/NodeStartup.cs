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
    Connect.Data.Security.ApiKeyCache keys,
    ProcessSupervisor supervisor,
    GrainProcessOwner owner,
    ContentProcessHost host,
    Connect.Core.Hosting.DataPaths paths,
    IGrainFactory grains,
    Connect.Runtime.Sandbox.ContentSandbox contentSandbox,
    Connect.Core.Hosting.LocalNode node,
    Microsoft.AspNetCore.Hosting.Server.IServer server,
    Microsoft.Extensions.Options.IOptions<Connect.Core.Hosting.ClusterOptions> cluster,
    Microsoft.Extensions.Options.IOptions<Connect.Core.Hosting.ConnectOptions> connect,
    TimeProvider time,
    ILogger<NodeStartup> logger) : IHostedService
{
    public async Task StartAsync(CancellationToken cancellationToken)
    {
        // Kestrel started before this service: its address is known, and processes started below carry it.
        node.SetInternalUrl(cluster.Value.InternalUrl ?? InternalUrlFromListener());
        LogNode(logger, node.Name, node.Silo, node.InternalUrl);
        supervisor.SetOwner(owner);
        SweepLeftovers();
        foreach (var job in await store.ListActiveJobsAsync(host.NodeName, cancellationToken))
        {
            await store.DeleteApiKeysNamedAsync(Connect.Data.Security.ApiKeys.ProcessKeyName(job.Key), cancellationToken);
            keys.InvalidateAll();
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

    /// <summary>Kestrel's first address, with a wildcard host replaced by the silo's advertised address.</summary>
    private string InternalUrlFromListener()
    {
        var address = server.Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:3939";
        var silo = string.IsNullOrEmpty(node.Silo) ? "127.0.0.1" : Orleans.Runtime.SiloAddress.FromParsableString(node.Silo).Endpoint.Address.ToString();
        return address.Replace("://0.0.0.0", "://" + silo).Replace("://[::]", "://" + silo).Replace("://+", "://" + silo).Replace("://*", "://" + silo);
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

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        await supervisor.DisposeAsync();
        contentSandbox.Release();
    }

    /// <summary>
    /// What a previous run left half-done: socket directories of processes that are gone, and the staging output of
    /// renders cut short (their processes died with that run: they were the launcher thread's children).
    /// </summary>
    private void SweepLeftovers()
    {
        var abandonedAfter = TimeSpan.FromSeconds(connect.Value.DeployTimeoutSeconds + 60);
        var removed = 0;
        if (Directory.Exists(paths.Sockets))
        {
            foreach (var dir in Directory.EnumerateDirectories(paths.Sockets))
            {
                removed += TryDelete(dir);
            }
        }
        var apps = Path.Combine(paths.Root, "apps");
        if (Directory.Exists(apps))
        {
            foreach (var content in Directory.EnumerateDirectories(apps))
            {
                foreach (var staging in Directory.EnumerateDirectories(content, "*.output.tmp-*"))
                {
                    // The apps directory is shared by every node of a cluster: only staging older than any deploy may
                    // last is abandoned; younger staging may be another node's render in progress.
                    if (time.GetUtcNow() - Directory.GetLastWriteTimeUtc(staging) > abandonedAfter)
                    {
                        removed += TryDelete(staging);
                    }
                }
            }
        }
        if (removed > 0)
        {
            LogSwept(logger, removed);
        }
    }

    private static int TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
            return 1;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Node {Node}: silo {Silo}, internal URL {InternalUrl}")]
    private static partial void LogNode(ILogger logger, string node, string silo, string internalUrl);

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed {Count} leftovers (sockets, unfinished render output) of a previous run")]
    private static partial void LogSwept(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Killed process {Pid} of content {Content} left running by a previous run of this node")]
    private static partial void LogOrphanKilled(ILogger logger, int pid, Guid content);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Closed {Count} tasks interrupted by the previous run of this node")]
    private static partial void LogInterrupted(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Marked {Count} jobs of a previous run of this node as finished")]
    private static partial void LogOrphans(ILogger logger, int count);
}
