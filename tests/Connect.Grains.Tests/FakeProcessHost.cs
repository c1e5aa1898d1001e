using System.Collections.Concurrent;
using Connect.Abstractions;
using Connect.Core.Hosting;
using Connect.Grains.Processes;

namespace Connect.Grains.Tests;

/// <summary>A process that a fake node "runs": nothing is launched, the node's table is the process.</summary>
public sealed record FakeProcess(Guid Id, Guid Content, string JobKey, long BundleId, int Port);

/// <summary>
/// What every silo's fake host shares in one test cluster: the starts planned to fail, and a signal raised on every
/// change, so that tests wait for grain work that runs after a call returned (EnsureMinimum, replacements) on events
/// with a deadline, not on sleeps.
/// </summary>
public sealed class FakeNodes
{
    private readonly ConcurrentDictionary<Guid, ConcurrentQueue<string>> _failures = new();
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>The next <paramref name="count"/> starts of <paramref name="content"/>, on any node, fail with <paramref name="error"/>.</summary>
    public void FailNextStarts(Guid content, int count, string error)
    {
        var queue = _failures.GetOrAdd(content, _ => new ConcurrentQueue<string>());
        for (var i = 0; i < count; i++)
        {
            queue.Enqueue(error);
        }
    }

    internal bool TryTakeFailure(Guid content, out string error)
    {
        error = "";
        return _failures.TryGetValue(content, out var queue) && queue.TryDequeue(out error!);
    }

    internal void Changed() => Interlocked.Exchange(ref _changed, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult();

    /// <summary>Returns once <paramref name="condition"/> holds, re-checking it whenever a fake host changes.</summary>
    public async Task WaitUntilAsync(Func<bool> condition, string what, TimeSpan? timeout = null, Func<string>? state = null)
    {
        using var deadline = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        while (true)
        {
            var changed = Volatile.Read(ref _changed).Task;
            if (condition())
            {
                return;
            }
            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"timed out waiting until {what}" + (state is null ? "" : $"; {state()}"));
            }
        }
    }
}

/// <summary>
/// One silo's process host: an in-memory table instead of OS processes. Starts succeed unless a failure was planned;
/// exits are reported to the owning ContentGrain the way <see cref="GrainProcessOwner"/> reports a supervisor's.
/// </summary>
public sealed class FakeProcessHost(IGrainFactory grains, LocalNode node, FakeNodes nodes) : IProcessHost
{
    private readonly ConcurrentDictionary<Guid, FakeProcess> _running = new();
    private readonly ConcurrentQueue<(Guid Id, Guid Content)> _starts = new();
    private readonly ConcurrentQueue<Guid> _stops = new();
    private int _nextPort = 20000;
    private int _capacityChecks;
    private int _listCalls;

    public string NodeName => node.Name;

    public string Silo => node.Silo;

    /// <summary>When set, the count this node claims to run (to make it look full to its process grains).</summary>
    public int? ClaimedCount { get; set; }

    /// <summary>How often a process grain asked whether this node has room: once per start attempt placed here.</summary>
    public int CapacityChecks => Volatile.Read(ref _capacityChecks);

    /// <summary>How often this node was asked which processes it runs (only its own node grain asks).</summary>
    public int ListCalls => Volatile.Read(ref _listCalls);

    public int Count
    {
        get
        {
            Interlocked.Increment(ref _capacityChecks);
            nodes.Changed();
            return ClaimedCount ?? _running.Count;
        }
    }

    public IReadOnlyList<FakeProcess> Running(Guid content) => _running.Values.Where(p => p.Content == content).ToArray();

    public bool Runs(Guid processId) => _running.ContainsKey(processId);

    /// <summary>Start attempts for the content that reached this host (failed ones included).</summary>
    public int Starts(Guid content) => _starts.Count(s => s.Content == content);

    public bool Stopped(Guid processId) => _stops.Contains(processId);

    public Task<ProcessStartResult> StartAsync(Guid processId, ProcessStartRequest request, string silo, CancellationToken ct)
    {
        _starts.Enqueue((processId, request.ContentGuid));
        ProcessStartResult result;
        if (nodes.TryTakeFailure(request.ContentGuid, out var error))
        {
            result = new ProcessStartResult { Started = false, Error = error, LogTail = ["Traceback (most recent call last):", error] };
        }
        else
        {
            var port = Interlocked.Increment(ref _nextPort);
            _running[processId] = new FakeProcess(processId, request.ContentGuid, request.JobKey, request.BundleId, port);
            result = new ProcessStartResult { Started = true, Silo = silo, Node = node.Name, InternalUrl = node.InternalUrl, Port = port, Pid = port };
        }
        nodes.Changed();
        return Task.FromResult(result);
    }

    public Task StopAsync(Guid processId)
    {
        if (_running.TryRemove(processId, out var process))
        {
            _stops.Enqueue(processId);
            nodes.Changed();
            // The supervisor reports every exit, asked for or not, from its watcher (off the caller's path); SIGTERM
            // gives 143. The grain removed the entry before stopping it, so this report must change nothing.
            _ = Task.Run(async () =>
            {
                try
                {
                    await ReportExitAsync(process, 143);
                }
                catch (Exception)
                {
                    // The cluster may be going down with the test.
                }
            });
        }
        return Task.CompletedTask;
    }

    public IReadOnlyList<HostedProcess> ListProcesses(Guid content)
    {
        Interlocked.Increment(ref _listCalls);
        return _running.Values.Where(p => p.Content == content).Select(p => new HostedProcess(p.Id, p.JobKey, p.Port, p.BundleId)).ToArray();
    }

    /// <summary>The process exits by itself (a crash when <paramref name="exitCode"/> is not 0 or 143).</summary>
    public async Task ExitAsync(Guid processId, int exitCode)
    {
        if (!_running.TryRemove(processId, out var process))
        {
            throw new InvalidOperationException($"node {node.Name} does not run process {processId}");
        }
        nodes.Changed();
        await ReportExitAsync(process, exitCode);
    }

    /// <summary>Forgets what earlier tests left running here (without reports: their content is gone too).</summary>
    public void Reset()
    {
        _running.Clear();
        ClaimedCount = null;
    }

    /// <summary>The node died: its processes are gone, and nobody is left on it to report their exits.</summary>
    public void Die()
    {
        _running.Clear();
        nodes.Changed();
    }

    private Task ReportExitAsync(FakeProcess process, int exitCode) =>
        grains.GetGrain<IContentGrain>(process.Content).ProcessExitedAsync(process.Id, exitCode,
            $"the process exited with code {exitCode}", ["some output", $"exit {exitCode}"]);
}
