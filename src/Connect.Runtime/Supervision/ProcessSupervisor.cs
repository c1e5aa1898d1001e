using System.Collections.Concurrent;
using Connect.Runtime.Processes;
using Connect.Runtime.Sandbox;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Supervision;

/// <summary>What the supervisor asks of the cluster about its processes (implemented by the grain layer).</summary>
public interface IProcessOwner
{
    /// <summary>The process has had no connections for its idle timeout: may it stop?</summary>
    Task<bool> MayStopIdleAsync(SupervisedProcess process);

    /// <summary>The process is gone, by request or on its own.</summary>
    Task OnExitedAsync(SupervisedProcess process, int? exitCode);
}

public sealed class ProcessStartException(string message, IReadOnlyList<string> logTail) : Exception(message)
{
    public IReadOnlyList<string> LogTail { get; } = logTail;
}

/// <summary>One OS process owned by this node, with its live connection count.</summary>
public sealed class SupervisedProcess
{
    private int _connections;
    private long _lastActivityTicks;

    internal SupervisedProcess(Guid id, Guid contentGuid, string jobKey, ListenAddress listen, ProcessHandle handle, TimeSpan idleTimeout, DateTimeOffset now)
    {
        Id = id;
        ContentGuid = contentGuid;
        JobKey = jobKey;
        Listen = listen;
        Destination = listen.SocketPath is null ? $"http://127.0.0.1:{listen.Port}" : $"http://{id:N}{UnixSocketHost.Suffix}";
        Handle = handle;
        IdleTimeout = idleTimeout;
        _lastActivityTicks = now.UtcTicks;
    }

    public Guid Id { get; }
    public Guid ContentGuid { get; }
    /// <summary>The bundle the process runs (0 when started outside a deployment, as in tests).</summary>
    public long BundleId { get; init; }
    public string JobKey { get; }
    public ListenAddress Listen { get; }

    /// <summary>TCP port, or 0 for a process on a Unix socket.</summary>
    public int Port => Listen.Port;

    /// <summary>The forwarding destination: a loopback URL, or a host name the front end's connect callback maps to the socket.</summary>
    public string Destination { get; }
    public ProcessHandle Handle { get; }
    public TimeSpan IdleTimeout { get; }
    /// <summary>Marks a process the idle check is stopping: no connection may enter it any more.</summary>
    private const int Closing = int.MinValue / 2;

    public int Connections => Math.Max(0, Volatile.Read(ref _connections));
    public DateTimeOffset LastActivity => new(Interlocked.Read(ref _lastActivityTicks), TimeSpan.Zero);
    internal bool Stopping { get; set; }

    private readonly TaskCompletionSource _retired = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Completes once the exit has been handled: the owner (the ContentGrain) knows the process is gone.</summary>
    public Task Retired => _retired.Task;

    internal void MarkRetired() => _retired.TrySetResult();

    /// <summary>Why the sandbox ended the process (its memory limit), when it did.</summary>
    public string? ExitReason { get; internal set; }

    /// <summary>Whether the exit was asked for (idle stop, kill, shutdown) rather than the process's own doing.</summary>
    public bool StopRequested => Stopping;

    /// <summary>
    /// Counts a connection (an HTTP request or a WebSocket session) until the returned scope is disposed, unless
    /// the process already has <paramref name="limit"/> connections: the check and the count are one atomic step,
    /// so max_conns_per_process holds under concurrent requests.
    /// </summary>
    public bool TryEnter(int limit, TimeProvider time, out ConnectionScope scope)
    {
        var current = Volatile.Read(ref _connections);
        while (current >= 0 && current < limit)
        {
            var seen = Interlocked.CompareExchange(ref _connections, current + 1, current);
            if (seen == current)
            {
                Interlocked.Exchange(ref _lastActivityTicks, time.GetUtcNow().UtcTicks);
                scope = new ConnectionScope(this, time);
                return true;
            }
            current = seen;
        }
        scope = default;
        return false;
    }

    /// <summary>Closes an idle process to new connections, atomically with the check that it has none.</summary>
    internal bool TryBeginClose() => Interlocked.CompareExchange(ref _connections, Closing, 0) == 0;

    /// <summary>Reopens a process the owner decided to keep.</summary>
    internal void CancelClose() => Interlocked.CompareExchange(ref _connections, 0, Closing);

    internal void Leave(TimeProvider time)
    {
        Interlocked.Exchange(ref _lastActivityTicks, time.GetUtcNow().UtcTicks);
        Interlocked.Decrement(ref _connections);
    }

    public readonly struct ConnectionScope(SupervisedProcess process, TimeProvider time) : IDisposable
    {
        public void Dispose() => process.Leave(time);
    }
}

/// <summary>
/// The node-local owner of content processes: starts them, counts their connections, notices idleness and
/// exits, and kills them all when the node stops. Grains are only its face; the OS processes live here.
/// </summary>
public sealed partial class ProcessSupervisor : IAsyncDisposable
{
    private readonly ConcurrentDictionary<Guid, SupervisedProcess> _processes = new();
    private readonly ConcurrentDictionary<Guid, ProcessHandle> _starting = new();
    private readonly TimeProvider _time;
    private readonly ILogger<ProcessSupervisor> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private readonly Task _idleLoop;
    private IProcessOwner? _owner;
    private int _disposed;

    public ProcessSupervisor(TimeProvider time, ILogger<ProcessSupervisor> logger, TimeSpan? idleCheckInterval = null)
    {
        _time = time;
        _logger = logger;
        _idleLoop = IdleLoopAsync(idleCheckInterval ?? TimeSpan.FromSeconds(1), _stopping.Token);
    }

    /// <summary>Set once at start-up; breaks the cycle between this node-local service and the grain layer.</summary>
    public void SetOwner(IProcessOwner owner) => _owner = owner;

    /// <summary>Processes running or starting on this node (starts in flight count against the node's limit too).</summary>
    public int Count => _processes.Count + _starting.Count;

    public IReadOnlyCollection<SupervisedProcess> Processes => _processes.Values.ToArray();

    public bool TryGet(Guid processId, out SupervisedProcess process) => _processes.TryGetValue(processId, out process!);

    /// <summary>Launches the process and waits until its port accepts connections (or it fails, or the init timeout passes).</summary>
    public Task<SupervisedProcess> StartAsync(Guid processId, Guid contentGuid, string jobKey, LaunchSpec spec, int port,
        TimeSpan initTimeout, TimeSpan idleTimeout, CancellationToken ct) =>
        StartAsync(processId, contentGuid, jobKey, new SandboxedLaunch(spec, null), ListenAddress.Tcp(port), initTimeout, idleTimeout, ct);

    /// <summary>
    /// Launches a (sandboxed) process and waits until it accepts connections on <paramref name="listen"/>. The
    /// supervisor owns <paramref name="launch"/> from here on and disposes it (limit scope, scratch) when the process is gone.
    /// </summary>
    public async Task<SupervisedProcess> StartAsync(Guid processId, Guid contentGuid, string jobKey, SandboxedLaunch launch, ListenAddress listen,
        TimeSpan initTimeout, TimeSpan idleTimeout, CancellationToken ct, long bundleId = 0)
    {
        if (Volatile.Read(ref _disposed) != 0)
        {
            await launch.DisposeAsync();
            throw new ProcessStartException("this node is shutting down", []);
        }
        ProcessHandle handle;
        try
        {
            handle = ProcessLauncher.Start(launch.Spec, _logger, _time);
        }
        catch
        {
            await launch.DisposeAsync();
            throw;
        }
        var port = listen.Port;
        // Known from launch on, so a shutdown during start-up stops it too.
        _starting[processId] = handle;
        LogStarting(_logger, contentGuid, handle.Pid, listen);
        bool ready;
        try
        {
            ready = await LoopbackPorts.WaitUntilAcceptingAsync(listen, initTimeout, handle.Exited, _time, ct);
            if (Volatile.Read(ref _disposed) != 0)
            {
                ready = false;
            }
        }
        catch
        {
            _starting.TryRemove(processId, out _);
            await handle.DisposeAsync();
            await launch.DisposeAsync();
            throw;
        }
        if (!ready)
        {
            _starting.TryRemove(processId, out _);
            var exited = handle.HasExited;
            await handle.StopAsync(TimeSpan.FromSeconds(2));
            var code = await handle.Exited;
            var why = launch.ExplainExit(code);
            if (why is not null)
            {
                handle.Note("Connect: " + why);
            }
            await launch.DisposeAsync();
            var message = exited
                ? $"the process exited with code {code} before it accepted connections" + (why is null ? "" : $" ({why})")
                : $"the process did not accept connections within {initTimeout.TotalSeconds:0} s (init_timeout)";
            LogStartFailed(_logger, contentGuid, message);
            throw new ProcessStartException(message, handle.Log.Tail(50));
        }
        var process = new SupervisedProcess(processId, contentGuid, jobKey, listen, handle, idleTimeout, _time.GetUtcNow()) { BundleId = bundleId };
        _processes[processId] = process;
        _starting.TryRemove(processId, out _);
        // On the thread pool: the watcher lives as long as the process, whoever called StartAsync.
        _ = Task.Run(() => WatchExitAsync(process, launch));
        return process;
    }

    public async Task StopAsync(Guid processId)
    {
        if (_processes.TryGetValue(processId, out var process))
        {
            process.Stopping = true;
            await process.Handle.StopAsync(TimeSpan.FromSeconds(5));
        }
    }

    private async Task WatchExitAsync(SupervisedProcess process, SandboxedLaunch launch)
    {
        int? code = null;
        try
        {
            code = await process.Handle.Exited;
        }
        catch (Exception e) when (e is InvalidOperationException or OperationCanceledException)
        {
            // The handle was disposed without an exit code; the process is gone all the same.
        }
        _processes.TryRemove(process.Id, out _);
        if (code is { } c && !process.Stopping && launch.ExplainExit(c) is { } why)
        {
            process.ExitReason = why;
            process.Handle.Note("Connect: " + why);
            LogKilledBySandbox(_logger, process.ContentGuid, process.Handle.Pid, why);
        }
        try
        {
            await launch.DisposeAsync();
        }
        catch (Exception e)
        {
            LogOwnerFailed(_logger, e);
        }
        LogExited(_logger, process.ContentGuid, process.Handle.Pid, code);
        try
        {
            if (_owner is { } owner)
            {
                await owner.OnExitedAsync(process, code);
            }
        }
        catch (Exception e)
        {
            LogOwnerFailed(_logger, e);
        }
        finally
        {
            process.MarkRetired();
        }
    }

    private async Task IdleLoopAsync(TimeSpan interval, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(interval, _time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                await CheckIdleAsync();
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    /// <summary>One pass of the idle check: every process with no connections for its idle timeout is offered for stopping.</summary>
    public async Task CheckIdleAsync()
    {
        var now = _time.GetUtcNow();
        foreach (var process in _processes.Values)
        {
            if (process.Stopping || process.Connections > 0 || now - process.LastActivity < process.IdleTimeout || _owner is not { } owner)
            {
                continue;
            }
            // Closed to new connections before the owner is asked, so none can slip in and then be cut off.
            if (!process.TryBeginClose())
            {
                continue;
            }
            var stop = false;
            try
            {
                stop = await owner.MayStopIdleAsync(process);
            }
            catch (Exception e)
            {
                LogOwnerFailed(_logger, e);
            }
            if (stop)
            {
                LogIdleStop(_logger, process.ContentGuid, process.Handle.Pid);
                await StopAsync(process.Id);
            }
            else
            {
                process.CancelClose();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        // Called by the node's shutdown and again by the container: only the first call does the work.
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        await _stopping.CancelAsync();
        await _idleLoop;
        await Task.WhenAll(_processes.Values.Select(p => p.Handle.StopAsync(TimeSpan.FromSeconds(5)))
            .Concat(_starting.Values.Select(h => h.StopAsync(TimeSpan.FromSeconds(5)))));
        _stopping.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Starting a process for content {Content}: pid {Pid}, listening on {Listen}")]
    private static partial void LogStarting(ILogger logger, Guid content, int pid, ListenAddress listen);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A process for content {Content} failed to start: {Reason}")]
    private static partial void LogStartFailed(ILogger logger, Guid content, string reason);

    [LoggerMessage(Level = LogLevel.Information, Message = "A process of content {Content} (pid {Pid}) exited with code {Code}")]
    private static partial void LogExited(ILogger logger, Guid content, int pid, int? code);

    [LoggerMessage(Level = LogLevel.Information, Message = "Stopping idle process {Pid} of content {Content}")]
    private static partial void LogIdleStop(ILogger logger, Guid content, int pid);

    [LoggerMessage(Level = LogLevel.Warning, Message = "A process of content {Content} (pid {Pid}) was ended by its sandbox: {Reason}")]
    private static partial void LogKilledBySandbox(ILogger logger, Guid content, int pid, string reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The process owner failed to handle a supervisor event")]
    private static partial void LogOwnerFailed(ILogger logger, Exception exception);
}
