using Connect.Abstractions;

namespace Connect.Grains.Processes;

/// <summary>
/// The node-local side of content processes, as the process and node grains use it: start one, stop one, say which
/// run here. Production pairs <see cref="ContentProcessHost"/> with the node's supervisor; grain tests put an
/// in-memory table behind it, so that scheduling rules are tested without launching anything.
/// </summary>
public interface IProcessHost
{
    /// <summary>Processes this node runs or is starting: what Scheduler:MaxProcessesPerNode limits.</summary>
    int Count { get; }

    /// <summary>Launches the process and waits until it accepts connections (or fails to); <paramref name="silo"/> is this node's silo.</summary>
    Task<ProcessStartResult> StartAsync(Guid processId, ProcessStartRequest request, string silo, CancellationToken ct);

    /// <summary>Stops the process if this node runs it; its exit is reported to its content like any other.</summary>
    Task StopAsync(Guid processId);

    /// <summary>The live processes of <paramref name="content"/> on this node (neither exited nor being stopped).</summary>
    IReadOnlyList<HostedProcess> ListProcesses(Guid content);
}

/// <summary>A process a node runs, as its node grain reports it.</summary>
public sealed record HostedProcess(Guid Id, string JobKey, int Port, long BundleId);
