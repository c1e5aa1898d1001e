using Connect.Abstractions;

namespace Connect.Grains.Tasks;

/// <summary>
/// Collects a task's output lines from any thread and ships them to the task grain in batches, so a chatty
/// build step (pip) costs a grain call per batch, not per line.
/// </summary>
public sealed class TaskOutput : IAsyncDisposable
{
    private readonly ITaskGrain _task;
    private readonly List<string> _pending = [];
    private readonly Lock _lock = new();
    private readonly SemaphoreSlim _flushing = new(1, 1);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _pump;

    public TaskOutput(ITaskGrain task, TimeProvider time)
    {
        _task = task;
        _pump = Task.Run(() => PumpAsync(time, _stop.Token));
    }

    public void Write(string line)
    {
        lock (_lock)
        {
            // Multi-line messages (pip errors) become one output line each, as clients print them line by line.
            _pending.AddRange(line.Replace("\r\n", "\n").Split('\n'));
        }
    }

    public async Task FlushAsync()
    {
        await _flushing.WaitAsync();
        try
        {
            string[] batch;
            lock (_lock)
            {
                batch = [.. _pending];
                _pending.Clear();
            }
            if (batch.Length > 0)
            {
                try
                {
                    await _task.AppendAsync(batch);
                }
                catch
                {
                    // Not lost: the lines go back in front of what came since, for the next flush.
                    lock (_lock)
                    {
                        _pending.InsertRange(0, batch);
                    }
                    throw;
                }
            }
        }
        finally
        {
            _flushing.Release();
        }
    }

    private async Task PumpAsync(TimeProvider time, CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(200), time);
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                try
                {
                    await FlushAsync();
                }
                catch (Exception e) when (e is not OperationCanceledException)
                {
                    // A failed append is retried on the next tick; the final flush reports a lasting failure.
                }
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _pump;
        await FlushAsync();
        _stop.Dispose();
        _flushing.Dispose();
    }
}
