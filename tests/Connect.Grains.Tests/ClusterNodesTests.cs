using Connect.Core.Model;
using Connect.Data;
using Connect.Data.Cluster;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Connect.Grains.Tests;

/// <summary>The placement view on its own, where a grain test can only hit its races by chance.</summary>
public sealed class ClusterNodesTests
{
    [Fact]
    public void Concurrent_placements_count_each_other()
    {
        // Orleans places activations on several workers at once: EnsureMinimum's burst of three starts reaches the
        // view from three threads together, and each choice must see the others or two land where one should.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var nodes = new ClusterNodes(Options.Create(new SchedulerDefaults()), time);
        string[] silos = ["10.0.0.1:11111@1", "10.0.0.2:11111@1", "10.0.0.3:11111@1"];
        var now = time.GetUtcNow();
        var rows = silos.Select(s => new NodeInfo("n" + s, s, "", 0, 1L << 30, 0, false, now, now)).ToArray();
        const int rounds = 20_000;
        var chosen = new string?[rounds, silos.Length];
        using var barrier = new Barrier(silos.Length, _ => nodes.Update(rows));
        var threads = Enumerable.Range(0, silos.Length).Select(t => new Thread(() =>
        {
            for (var round = 0; round < rounds; round++)
            {
                // The last thread to arrive refreshes the view (post-phase action) before any of them picks.
                barrier.SignalAndWait();
                chosen[round, t] = nodes.ChooseLeastLoaded(silos);
            }
            barrier.RemoveParticipant();
        })).ToArray();
        foreach (var thread in threads)
        {
            thread.Start();
        }
        foreach (var thread in threads)
        {
            thread.Join();
        }

        var piledUp = Enumerable.Range(0, rounds).Count(r => Enumerable.Range(0, silos.Length).Select(t => chosen[r, t]).Distinct().Count() < silos.Length);
        Assert.Equal(0, piledUp);
    }

    [Fact]
    public void A_node_that_refused_a_start_is_left_out_until_the_next_refresh()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var nodes = new ClusterNodes(Options.Create(new SchedulerDefaults()), time);
        var now = time.GetUtcNow();
        NodeInfo[] rows = [new("a", "a:1@1", "", 0, 1, 0, false, now, now), new("b", "b:1@1", "", 5, 1, 0, false, now, now)];
        nodes.Update(rows);

        nodes.Refused("a:1@1");

        Assert.Equal("b:1@1", nodes.ChooseLeastLoaded(["a:1@1", "b:1@1"]));
        nodes.Update(rows);
        Assert.Equal("a:1@1", nodes.ChooseLeastLoaded(["a:1@1", "b:1@1"]));
    }
}
