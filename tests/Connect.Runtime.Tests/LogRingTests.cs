using Connect.Runtime.Processes;

namespace Connect.Runtime.Tests;

public sealed class LogRingTests
{
    [Fact]
    public void Tail_returns_the_newest_lines_oldest_first()
    {
        var ring = new LogRing(3);
        Assert.Empty(ring.Tail(5));
        ring.Add("a");
        ring.Add("b");
        Assert.Equal(["a", "b"], ring.Tail(5));
        ring.Add("c");
        ring.Add("d");
        ring.Add("e");
        Assert.Equal(["c", "d", "e"], ring.Tail(10));
        Assert.Equal(["d", "e"], ring.Tail(2));
        Assert.Empty(ring.Tail(0));
    }

    [Fact]
    public void Default_capacity_is_1000()
    {
        var ring = new LogRing();
        for (var i = 0; i < 1500; i++)
        {
            ring.Add(i.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        var tail = ring.Tail(int.MaxValue);
        Assert.Equal(1000, tail.Count);
        Assert.Equal("500", tail[0]);
        Assert.Equal("1499", tail[^1]);
    }

    [Fact]
    public void LineAdded_fires_for_every_line()
    {
        var ring = new LogRing(2);
        var seen = new List<string>();
        ring.LineAdded += seen.Add;
        ring.Add("x");
        ring.Add("y");
        ring.Add("z");
        Assert.Equal(["x", "y", "z"], seen);
    }

    [Fact]
    public async Task Concurrent_writers_lose_nothing_within_capacity()
    {
        var ring = new LogRing(10_000);
        var count = 0;
        ring.LineAdded += _ => Interlocked.Increment(ref count);
        await Task.WhenAll(Enumerable.Range(0, 8).Select(w => Task.Run(() =>
        {
            for (var i = 0; i < 1000; i++)
            {
                ring.Add($"{w}:{i}");
            }
        })));
        Assert.Equal(8000, count);
        Assert.Equal(8000, ring.Tail(int.MaxValue).Distinct().Count());
    }
}
