using Connect.Abstractions;

namespace Connect.Grains.Tests;

[Collection(SharedClusterCollection.Name)]
public sealed class NodeGrainTests(SharedCluster shared) : IAsyncLifetime
{
    private readonly GrainCluster _cluster = shared.Grains;

    public Task InitializeAsync() => _cluster.ResetAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task Each_node_grain_answers_from_the_node_its_key_names()
    {
        var content = await _cluster.CreateContentAsync(min: 3, max: 3);
        await _cluster.Content(content).EnsureMinimumAsync();
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.LiveSilos.All(s => _cluster.Host(s).Running(content).Count == 1), "one process runs on each node");

        foreach (var silo in _cluster.LiveSilos)
        {
            var calls = _cluster.LiveSilos.Select(s => _cluster.Host(s).ListCalls).ToArray();

            var listed = await _cluster.Client.GetGrain<INodeGrain>(_cluster.SiloName(silo)).ListProcessesAsync(content);

            var process = Assert.Single(listed);
            Assert.Equal(_cluster.Host(silo).Running(content)[0].Id, process.ProcessId);
            Assert.Equal(_cluster.SiloName(silo), process.Silo);
            Assert.Equal(_cluster.Host(silo).NodeName, process.Node);
            // Only that node's host was asked.
            Assert.Equal(calls.Select((n, i) => i == silo ? n + 1 : n), _cluster.LiveSilos.Select(s => _cluster.Host(s).ListCalls));
        }
    }

    [Fact]
    public async Task A_node_grain_for_a_silo_that_is_not_in_the_cluster_fails_cleanly()
    {
        var address = _cluster.Silos[0].SiloAddress;
        // The same endpoint in another generation: an earlier run of that node, say.
        var stranger = Orleans.Runtime.SiloAddress.New(address.Endpoint, address.Generation - 1).ToParsableString();

        var failure = await Assert.ThrowsAnyAsync<Exception>(() =>
            _cluster.Client.GetGrain<INodeGrain>(stranger).ListProcessesAsync(Guid.NewGuid()).WaitAsync(TimeSpan.FromSeconds(20)));

        // Not an empty answer from some other node, and not a wait for the response timeout: placement refuses it.
        Assert.IsType<Orleans.Runtime.SiloUnavailableException>(failure);
        Assert.Contains(stranger, failure.Message);
    }
}
