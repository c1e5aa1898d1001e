using Connect.Abstractions;

namespace Connect.Grains.Tests;

/// <summary>
/// Where process grains land: the ContentGrain's starts are placed by its silo's view of the node registry
/// (<see cref="Connect.Data.Cluster.ClusterNodes"/>), fed here with chosen loads; each start is then seen on the fake
/// host of the silo it landed on.
/// </summary>
[Collection(SharedClusterCollection.Name)]
public sealed class PlacementTests(SharedCluster shared) : IAsyncLifetime
{
    private readonly GrainCluster _cluster = shared.Grains;

    public Task InitializeAsync() => _cluster.ResetAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>Starts <paramref name="count"/> processes one after the other, each because the others are saturated.</summary>
    private static async Task<List<ProcessEndpoint>> StartProcessesAsync(IContentGrain content, int count)
    {
        var started = new List<ProcessEndpoint>();
        for (var i = 0; i < count; i++)
        {
            var route = await content.AcquireProcessAsync(started.Select(p => p.ProcessId).ToArray());
            Assert.Null(route.Error);
            started.Add(Assert.IsType<ProcessEndpoint>(route.Process));
        }
        return started;
    }

    [Fact]
    public async Task Processes_go_to_the_least_loaded_node_first_counting_the_ones_placed_since()
    {
        // A=5, B=0, C=2, one process for each of six items: B first, A (5) never. Each item's grain places from the view
        // of the silo it lives on, and counts only its own silo's placements since the last refresh, so how B and C
        // share the rest depends on where the grains live: B gets at least as many as C.
        _cluster.FeedLoads(new Load(0, 5), new Load(1, 0), new Load(2, 2));
        var started = new List<ProcessEndpoint>();
        var items = new List<Guid>();
        for (var i = 0; i < 6; i++)
        {
            items.Add(await _cluster.CreateContentAsync(min: 0, max: 1));
            started.AddRange(await StartProcessesAsync(_cluster.Content(items[^1]), 1));
        }

        Assert.Equal(_cluster.SiloName(1), started[0].Silo);
        Assert.True(started.Count(p => p.Silo == _cluster.SiloName(1)) >= started.Count(p => p.Silo == _cluster.SiloName(2)));
        Assert.Equal(6, started.Count(p => p.Silo == _cluster.SiloName(1) || p.Silo == _cluster.SiloName(2)));
        Assert.All(items, item => Assert.Empty(_cluster.Host(0).Running(item)));
    }

    [Fact]
    public async Task An_items_processes_spread_over_nodes_before_load_decides()
    {
        // A=5, B=0, C=2 and six processes of one item: one per node first (least loaded first: B, C, A), then again.
        _cluster.FeedLoads(new Load(0, 5), new Load(1, 0), new Load(2, 2));
        var content = await _cluster.CreateContentAsync(min: 0, max: 10);

        var started = await StartProcessesAsync(_cluster.Content(content), 6);

        Assert.Equal([_cluster.SiloName(1), _cluster.SiloName(2), _cluster.SiloName(0)], started.Take(3).Select(p => p.Silo));
        Assert.All(_cluster.LiveSilos, silo => Assert.Equal(2, _cluster.Host(silo).Running(content).Count));
    }

    [Fact]
    public async Task A_draining_node_and_a_full_node_get_no_processes()
    {
        // A is empty but draining, B is at Scheduler:MaxProcessesPerNode, C has 3. Only the registry says so: the
        // fake hosts of A and B would accept, so any process there would be placement's doing.
        _cluster.FeedLoads(new Load(0, 0, Draining: true), new Load(1, GrainCluster.MaxProcessesPerNode), new Load(2, 3));
        var content = await _cluster.CreateContentAsync(min: 0, max: 10);

        var started = await StartProcessesAsync(_cluster.Content(content), 4);

        Assert.All(started, p => Assert.Equal(_cluster.SiloName(2), p.Silo));
        Assert.Empty(_cluster.Host(0).Running(content));
        Assert.Empty(_cluster.Host(1).Running(content));
        Assert.Equal(4, _cluster.Host(2).Running(content).Count);
    }

    [Fact]
    public async Task Equal_loads_spread_a_burst_of_starts_over_every_node()
    {
        // The registry refreshes about once a second; between refreshes only the placements counted since keep a
        // burst from going to whichever node looked emptiest.
        _cluster.FeedEqualLoads();
        var content = await _cluster.CreateContentAsync(min: 0, max: 10);

        await StartProcessesAsync(_cluster.Content(content), 6);

        Assert.All(_cluster.LiveSilos, silo => Assert.Equal(2, _cluster.Host(silo).Running(content).Count));
    }

    [Fact]
    public async Task A_burst_of_minimum_processes_is_spread_too()
    {
        // EnsureMinimum issues its starts at once, without waiting for one to finish before placing the next.
        _cluster.FeedEqualLoads();
        var content = await _cluster.CreateContentAsync(min: 6, max: 10);

        await _cluster.Content(content).EnsureMinimumAsync();

        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 6, "six processes run");
        Assert.All(_cluster.LiveSilos, silo => Assert.Equal(2, _cluster.Host(silo).Running(content).Count));
    }
}
