using Connect.Core.Hosting;
using Connect.Grains.Cluster;
using Connect.Runtime.Supervision;
using Microsoft.Extensions.Options;

namespace Connect.Server.Cluster;

/// <summary>
/// A graceful stop (SIGTERM) drains the node before anything stops: readiness turns false at once, so the load
/// balancer sends new requests elsewhere; the registry marks the node draining, so no process is placed here and
/// new sessions go to processes on other nodes; existing sessions go on for up to Cluster:DrainSeconds (less once
/// no process has a connection). Then the hosted services stop as usual: processes, then the silo.
/// </summary>
public sealed partial class NodeDrain(
    LocalNode node,
    NodeHeartbeat heartbeat,
    ProcessSupervisor supervisor,
    IOptions<ClusterOptions> options,
    TimeProvider time,
    ILogger<NodeDrain> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    /// <summary>Runs before any hosted service stops: Kestrel and the silo still serve while this waits.</summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        node.BeginDrain();
        var grace = TimeSpan.FromSeconds(options.Value.DrainSeconds);
        LogDraining(logger, node.Name, grace.TotalSeconds, supervisor.Processes.Sum(p => p.Connections));
        try
        {
            await heartbeat.PublishNowAsync(cancellationToken).WaitAsync(TimeSpan.FromSeconds(2), time, cancellationToken);
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // The database may be the reason for the stop: the node still drains, readiness already says so.
        }
        var started = time.GetTimestamp();
        // The load balancer needs a probe interval or two to notice; wait at least that long unless there is no grace.
        var minimum = TimeSpan.FromSeconds(Math.Min(grace.TotalSeconds, 2));
        while (time.GetElapsedTime(started) < grace && !cancellationToken.IsCancellationRequested)
        {
            if (time.GetElapsedTime(started) >= minimum && supervisor.Processes.All(p => p.Connections == 0))
            {
                break;
            }
            try
            {
                await Task.Delay(TimeSpan.FromMilliseconds(200), time, cancellationToken);
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }
        LogDrained(logger, node.Name, time.GetElapsedTime(started).TotalSeconds, supervisor.Processes.Sum(p => p.Connections));
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {Node} draining: up to {Seconds} s for {Connections} open connections")]
    private static partial void LogDraining(ILogger logger, string node, double seconds, int connections);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Node {Node} drained after {Seconds:0.0} s ({Connections} connections left); stopping")]
    private static partial void LogDrained(ILogger logger, string node, double seconds, int connections);
}
