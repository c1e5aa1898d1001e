using System.Globalization;
using Connect.Abstractions;
using Connect.Core.Hosting;
using Connect.Data;
using Connect.Data.Cluster;
using Connect.Data.Security;
using Connect.Runtime.Supervision;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Runtime;

namespace Connect.Grains.Cluster;

/// <summary>
/// Keeps this node in the node registry (its load, draining flag and internal URL, about once a second), refreshes
/// this node's view of the others for placement, tracks whether the silo has joined, and closes the books on nodes
/// that left: one node (the active silo with the lowest address) finishes a lost node's jobs and tasks, tells the
/// content that ran processes there, and removes its registry row, which marks the loss as handled.
/// </summary>
public sealed partial class NodeHeartbeat(
    ICatalogStore store,
    LocalNode node,
    ClusterNodes nodes,
    ProcessSupervisor supervisor,
    IClusterMembershipService membership,
    IGrainFactory grains,
    ApiKeyCache keys,
    IOptions<ClusterOptions> options,
    TimeProvider time,
    ILogger<NodeHeartbeat> logger) : BackgroundService
{
    private bool _databaseDown;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(BeatAsync(stoppingToken), WatchMembershipAsync(stoppingToken));

    /// <summary>Writes this node's row at once (start, drain) rather than at the next beat.</summary>
    public async Task PublishNowAsync(CancellationToken ct)
    {
        await store.UpsertNodeAsync(Describe(), ct);
        node.DatabaseAnswered(time.GetUtcNow());
    }

    private async Task BeatAsync(CancellationToken ct)
    {
        var period = TimeSpan.FromMilliseconds(options.Value.HeartbeatMilliseconds);
        using var timer = new PeriodicTimer(period, time);
        do
        {
            try
            {
                await PublishNowAsync(ct);
                nodes.Update(await store.ListNodesAsync(ct));
                if (_databaseDown)
                {
                    _databaseDown = false;
                    LogDatabaseBack(logger);
                }
                await HandleLostNodesAsync(ct);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e)
            {
                if (!_databaseDown)
                {
                    _databaseDown = true;
                    LogBeatFailed(logger, e.Message);
                }
            }
        }
        while (await WaitAsync(timer, ct));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try
        {
            return await timer.WaitForNextTickAsync(ct);
        }
        catch (OperationCanceledException)
        {
            return false;
        }
    }

    private async Task WatchMembershipAsync(CancellationToken ct)
    {
        try
        {
            await foreach (var snapshot in membership.MembershipUpdates.WithCancellation(ct))
            {
                node.SetJoined(ParseSilo(node.Silo) is { } self && snapshot.GetSiloStatus(self) == SiloStatus.Active);
                nodes.SetDeadSilos(snapshot.Members.Values.Where(m => m.Status == SiloStatus.Dead).Select(m => m.SiloAddress.ToParsableString()));
                try
                {
                    await HandleLostNodesAsync(ct);
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    LogLossFailed(logger, e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    private static SiloAddress? ParseSilo(string silo) => string.IsNullOrEmpty(silo) ? null : SiloAddress.FromParsableString(silo);

    /// <summary>
    /// Nodes in the registry whose silo is dead (or gone from the membership, or silent far longer than failure
    /// detection takes) are lost. Only the active silo with the lowest address acts, so each loss is handled once;
    /// if it dies meanwhile, the next one finds the row still there and handles it.
    /// </summary>
    private async Task HandleLostNodesAsync(CancellationToken ct)
    {
        // Called from both the heartbeat and the membership loop: one pass at a time, so a loss is handled once.
        await _lossGate.WaitAsync(ct);
        try
        {
            await HandleLostNodesOnceAsync(ct);
        }
        finally
        {
            _lossGate.Release();
        }
    }

    private readonly SemaphoreSlim _lossGate = new(1, 1);

    private async Task HandleLostNodesOnceAsync(CancellationToken ct)
    {
        var snapshot = membership.CurrentSnapshot;
        var active = snapshot.Members.Values.Where(m => m.Status == SiloStatus.Active).Select(m => m.SiloAddress).ToArray();
        if (active.Length == 0 || active.Select(a => a.ToParsableString()).Min(StringComparer.Ordinal) != node.Silo)
        {
            return;
        }
        var now = time.GetUtcNow();
        foreach (var lost in nodes.Nodes)
        {
            if (lost.Name == node.Name || lost.SiloAddress == node.Silo)
            {
                continue;
            }
            var member = snapshot.Members.Values.FirstOrDefault(m => m.SiloAddress.ToParsableString() == lost.SiloAddress);
            var gone = member is null ? now - lost.Heartbeat > TimeSpan.FromSeconds(30) : member.Status == SiloStatus.Dead;
            if (!gone)
            {
                continue;
            }
            await HandleLostNodeAsync(lost, ct);
        }
    }

    private async Task HandleLostNodeAsync(NodeInfo lost, CancellationToken ct)
    {
        var now = time.GetUtcNow();
        // A node restarted under the same name has a new silo address and a row of its own: leave it alone.
        var current = (await store.ListNodesAsync(ct)).FirstOrDefault(n => n.Name == lost.Name);
        if (current is null || current.SiloAddress != lost.SiloAddress)
        {
            return;
        }
        var jobs = await store.ListActiveJobsAsync(lost.Name, ct);
        foreach (var job in jobs)
        {
            await store.DeleteApiKeysNamedAsync(ApiKeys.ProcessKeyName(job.Key), ct);
        }
        if (jobs.Count > 0)
        {
            keys.InvalidateAll();
        }
        var finishedJobs = await store.FinishOrphanedJobsAsync(lost.Name, now, ct);
        var finishedTasks = await store.FinishInterruptedTasksAsync(lost.Name,
            $"node {lost.Name} left the cluster while this task was running; run it again", now, ct);
        foreach (var content in jobs.Select(j => j.ContentGuid).Distinct())
        {
            try
            {
                await grains.GetGrain<IContentGrain>(content).NodeLostAsync(lost.SiloAddress);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogLossFailed(logger, e.Message);
            }
        }
        await store.DeleteNodeAsync(lost.Name, ct);
        LogNodeLost(logger, lost.Name, lost.SiloAddress, finishedJobs, finishedTasks);
    }

    private NodeInfo Describe() => new(node.Name, node.Silo, node.InternalUrl, supervisor.Count, AvailableMemory(), CpuLoad(),
        node.Draining, node.StartedTime, time.GetUtcNow());

    /// <summary>MemAvailable from /proc/meminfo, in bytes (0 where unknown).</summary>
    private static long AvailableMemory()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/meminfo"))
            {
                if (line.StartsWith("MemAvailable:", StringComparison.Ordinal))
                {
                    var kb = line["MemAvailable:".Length..].Trim().Split(' ')[0];
                    return long.Parse(kb, CultureInfo.InvariantCulture) * 1024;
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return 0;
    }

    /// <summary>The 1-minute load average per core (0 where unknown).</summary>
    private static double CpuLoad()
    {
        try
        {
            var first = File.ReadAllText("/proc/loadavg").Split(' ')[0];
            return double.Parse(first, CultureInfo.InvariantCulture) / Environment.ProcessorCount;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
        {
            return 0;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "The node registry could not be written ({Error}); this node reports not ready until the database answers")]
    private static partial void LogBeatFailed(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "The database answers again")]
    private static partial void LogDatabaseBack(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {Node} ({Silo}) left the cluster: {Jobs} jobs and {Tasks} tasks it ran were closed, its content restarted elsewhere")]
    private static partial void LogNodeLost(ILogger logger, string node, string silo, int jobs, int tasks);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Handling a lost node failed: {Error}")]
    private static partial void LogLossFailed(ILogger logger, string error);
}
