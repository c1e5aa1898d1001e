namespace Connect.Runtime.Processes;

/// <summary>Thread-safe bounded buffer of the most recent output lines of a process.</summary>
public sealed class LogRing
{
    private readonly string[] _lines;
    private readonly Lock _gate = new();
    private int _next;
    private int _count;

    public LogRing(int capacity = 1000)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _lines = new string[capacity];
    }

    public int Capacity => _lines.Length;

    /// <summary>Raised after a line is stored, on the thread that added it.</summary>
    public event Action<string>? LineAdded;

    public void Add(string line)
    {
        ArgumentNullException.ThrowIfNull(line);
        lock (_gate)
        {
            _lines[_next] = line;
            _next = (_next + 1) % _lines.Length;
            if (_count < _lines.Length)
            {
                _count++;
            }
        }

        // Outside the lock: a slow or re-entrant subscriber must not stall writers or deadlock on Tail.
        LineAdded?.Invoke(line);
    }

    /// <summary>Forgets every line (a new step of a build starts).</summary>
    public void Clear()
    {
        lock (_gate)
        {
            _next = 0;
            _count = 0;
            Array.Clear(_lines);
        }
    }

    /// <summary>Every stored line, oldest first.</summary>
    public IReadOnlyList<string> All() => Tail(_lines.Length);

    /// <summary>The last <paramref name="count"/> lines (fewer if not that many were added), oldest first.</summary>
    public IReadOnlyList<string> Tail(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        lock (_gate)
        {
            var n = Math.Min(count, _count);
            var result = new string[n];
            var start = (_next - n + _lines.Length) % _lines.Length;
            for (var i = 0; i < n; i++)
            {
                result[i] = _lines[(start + i) % _lines.Length];
            }

            return result;
        }
    }
}
