using Connect.Abstractions;
using Connect.Core.Model;
using Connect.Data;

namespace Connect.Grains.Tasks;

/// <summary>
/// Holds a task's output in memory for long-polling and writes it through to the catalog. A fresh activation
/// (after collection or a node loss) reloads what the catalog has.
/// </summary>
public sealed class TaskGrain(ICatalogStore store, TimeProvider time) : Grain, ITaskGrain
{
    private readonly List<string> _output = [];
    private TaskInfo? _info;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        var id = this.GetPrimaryKeyString();
        _info = await store.GetTaskAsync(id, cancellationToken);
        if (_info is not null)
        {
            _output.AddRange(await store.GetTaskOutputAsync(id, 0, cancellationToken));
        }
    }

    public async Task AppendAsync(IReadOnlyList<string> lines)
    {
        if (_info is null || lines.Count == 0)
        {
            return;
        }
        var first = _output.Count;
        _output.AddRange(lines);
        Signal();
        await store.AppendTaskOutputAsync(_info.Id, first, lines);
    }

    public async Task FinishAsync(int code, string error)
    {
        if (_info is null || _info.Finished)
        {
            return;
        }
        var now = time.GetUtcNow();
        await store.FinishTaskAsync(_info.Id, code, error, now);
        _info = _info with { Finished = true, Code = code, Error = error, FinishedTime = now };
        Signal();
    }

    public async Task<TaskSnapshot?> PollAsync(int? from, TimeSpan wait)
    {
        if (_info is null)
        {
            return null;
        }
        var first = Math.Max(0, from ?? 0);
        if (!_info.Finished && (from is null || first >= _output.Count) && wait > TimeSpan.Zero)
        {
            await Task.WhenAny(_changed.Task, Task.Delay(wait, time));
        }
        var lines = first < _output.Count ? _output.GetRange(first, _output.Count - first) : [];
        return new TaskSnapshot(_info.Id, lines, Math.Max(first, _output.Count), _info.Finished, _info.Code, _info.Error, _info.UserGuid, _info.ContentGuid);
    }

    private void Signal()
    {
        var previous = _changed;
        _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        previous.TrySetResult();
    }
}
