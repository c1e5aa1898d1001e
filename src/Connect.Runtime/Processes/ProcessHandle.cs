using System.Diagnostics;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Processes;

/// <summary>
/// A running child process. Stopping it stops its whole tree: the child is started through <c>setsid</c> so it leads
/// its own session and process group, which every descendant joins unless it deliberately leaves. Signalling the group
/// reaches grandchildren even after the leader died and they were re-parented, which walking the parent/child tree
/// (Process.Kill(entireProcessTree)) cannot do. Without setsid on the host it falls back to that tree walk.
/// </summary>
public sealed class ProcessHandle : IAsyncDisposable
{
    private static readonly TimeSpan DisposeGrace = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan GroupPollInterval = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan AfterKillWait = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan DrainWait = TimeSpan.FromSeconds(5);

    private readonly Process _process;
    private readonly bool _ownGroup;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly Action<string>? _onLine;
    private readonly StreamWriter? _logFile;
    private readonly Lock _logFileGate = new();
    private readonly TaskCompletionSource<int> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _stopGate = new();
    private Task? _stop;
    private Task _outputCompleted = Task.CompletedTask;

    private readonly int _wrapperDepth;

    internal ProcessHandle(Process process, bool ownGroup, TimeProvider time, ILogger logger, Action<string>? onLine, StreamWriter? logFile, int wrapperDepth = 0)
    {
        _wrapperDepth = wrapperDepth;
        _process = process;
        _ownGroup = ownGroup;
        _time = time;
        _logger = logger;
        _onLine = onLine;
        _logFile = logFile;
        Log = new LogRing();
    }

    public int Pid { get; private set; }

    public DateTimeOffset StartTime { get; private set; }

    /// <summary>Completes with the exit code when the process exits (128+N when killed by signal N).</summary>
    public Task<int> Exited => _exited.Task;

    public LogRing Log { get; }

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Completes when both output pipes reached end of file (every writer in the tree closed them).</summary>
    internal Task OutputCompleted => _outputCompleted;

    internal void OnStarted()
    {
        Pid = _process.Id;
        StartTime = _time.GetUtcNow();
        _outputCompleted = Task.WhenAll(
            Task.Run(() => PumpAsync(_process.StandardOutput)),
            Task.Run(() => PumpAsync(_process.StandardError)));
    }

    internal void OnExited()
    {
        int code;
        try
        {
            code = _process.ExitCode;
        }
        catch (InvalidOperationException)
        {
            code = -1;
        }

        _exited.TrySetResult(code);
    }

    /// <summary>
    /// SIGTERM to the tree, up to <paramref name="grace"/> for it to go, then SIGKILL. Idempotent: later calls return
    /// the first stop (and its grace).
    /// </summary>
    public Task StopAsync(TimeSpan grace)
    {
        lock (_stopGate)
        {
            return _stop ??= StopCoreAsync(grace);
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync(DisposeGrace));

    private async Task StopCoreAsync(TimeSpan grace)
    {
        var started = _time.GetTimestamp();
        if (!HasExited || (_ownGroup && ProcessGroups.HasLiveMembers(Pid)))
        {
            RuntimeLog.StoppingProcess(_logger, Pid, grace);
            Signal(ProcessGroups.SigTerm);
            await WaitWithinAsync(Exited, grace - _time.GetElapsedTime(started)).ConfigureAwait(false);

            // The leader going first does not mean its children have; give them what is left of the grace period.
            while (_ownGroup && ProcessGroups.HasLiveMembers(Pid) && _time.GetElapsedTime(started) < grace)
            {
                await Task.Delay(GroupPollInterval, _time).ConfigureAwait(false);
            }

            if (!HasExited || (_ownGroup && ProcessGroups.HasLiveMembers(Pid)))
            {
                RuntimeLog.KillingProcess(_logger, Pid);
                Signal(ProcessGroups.SigKill);
                await WaitWithinAsync(Exited, AfterKillWait).ConfigureAwait(false);
            }
        }

        await WaitWithinAsync(_outputCompleted, DrainWait).ConfigureAwait(false);
        lock (_logFileGate)
        {
            _logFile?.Dispose();
        }

        _process.Dispose();
    }

    private void Signal(int signal)
    {
        if (_ownGroup)
        {
            // Below the wrappers first: the program gets its SIGTERM while the sandbox around it still stands.
            if (signal == ProcessGroups.SigTerm && _wrapperDepth > 0 && ProcessGroups.SignalGroupBelow(Pid, _wrapperDepth, signal))
            {
                return;
            }
            ProcessGroups.SignalGroup(Pid, signal);
            return;
        }

        if (signal == ProcessGroups.SigKill)
        {
            try
            {
                _process.Kill(entireProcessTree: true);
            }
            catch (InvalidOperationException)
            {
                // Already gone.
            }
        }
        else
        {
            ProcessGroups.SignalProcess(Pid, signal);
        }
    }

    private async Task WaitWithinAsync(Task task, TimeSpan limit)
    {
        if (task.IsCompleted || limit <= TimeSpan.Zero)
        {
            return;
        }

        using var cts = new CancellationTokenSource();
        var delay = Task.Delay(limit, _time, cts.Token);
        await Task.WhenAny(task, delay).ConfigureAwait(false);
        await cts.CancelAsync().ConfigureAwait(false);
    }

    private async Task PumpAsync(StreamReader reader)
    {
        try
        {
            while (await reader.ReadLineAsync().ConfigureAwait(false) is { } line)
            {
                OnLine(line);
            }
        }
        catch (Exception e) when (e is IOException or ObjectDisposedException)
        {
            // The pipe went away with the process; nothing more to read.
        }
    }

    /// <summary>Adds a line of Connect's own to the process's log (e.g. why the sandbox killed it).</summary>
    public void Note(string line) => OnLine(line);

    private void OnLine(string line)
    {
        Log.Add(line);
        if (_logFile is not null)
        {
            lock (_logFileGate)
            {
                try
                {
                    _logFile.WriteLine(line);
                }
                catch (Exception e) when (e is IOException or ObjectDisposedException)
                {
                    RuntimeLog.LogFileWriteFailed(_logger, e, Pid);
                }
            }
        }

        if (_onLine is not null)
        {
            try
            {
                _onLine(line);
            }
            catch (Exception e)
            {
                // A faulty consumer must not stop the pump: the pipe would fill and block the child.
                RuntimeLog.OutputCallbackFailed(_logger, e, Pid);
            }
        }
    }
}
