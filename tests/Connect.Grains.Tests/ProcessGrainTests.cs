using Connect.Abstractions;
using Connect.Core.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Metadata;
using Orleans.Runtime;

namespace Connect.Grains.Tests;

[Collection(SharedClusterCollection.Name)]
public sealed class ProcessGrainTests(SharedCluster shared) : IAsyncLifetime
{
    private readonly GrainCluster _cluster = shared.Grains;

    public Task InitializeAsync() => _cluster.ResetAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    private static ProcessStartRequest Request(Guid content) =>
        new(content, 1, Guid.NewGuid().ToString("N")[..16], TimeSpan.FromSeconds(60), TimeSpan.FromSeconds(120));

    [Fact]
    public void Process_and_node_grains_are_immovable_for_the_rebalancer_and_the_repartitioner()
    {
        // What the runtime itself reads before moving an activation: "3" is ImmovableKind.Any.
        var properties = _cluster.Silos[0].ServiceProvider.GetRequiredService<GrainPropertiesResolver>();
        foreach (var grain in new IAddressable[] { _cluster.Client.GetGrain<IProcessGrain>(Guid.NewGuid()), _cluster.Client.GetGrain<INodeGrain>("x") })
        {
            var type = grain.GetGrainId().Type;
            Assert.True(properties.TryGetGrainProperties(type, out var found), $"no properties for {type}");
            Assert.Equal("3", found.Properties.GetValueOrDefault(WellKnownGrainTypeProperties.Immovable));
        }
    }

    [Fact]
    public async Task A_start_names_the_silo_and_node_it_ran_on_and_is_not_repeated()
    {
        _cluster.FeedLoads(new Load(0, 3), new Load(1, 3), new Load(2, 0));
        var content = await _cluster.CreateContentAsync(min: 0, max: 1);
        var processId = Guid.NewGuid();
        var process = _cluster.Client.GetGrain<IProcessGrain>(processId);
        var request = Request(content);

        var result = await process.StartAsync(request);

        Assert.True(result.Started, result.Error);
        Assert.Equal(_cluster.SiloName(2), result.Silo);
        Assert.Equal(_cluster.Host(2).NodeName, result.Node);
        Assert.Equal(_cluster.Silos[2].ServiceProvider.GetRequiredService<LocalNode>().InternalUrl, result.InternalUrl);
        Assert.True(_cluster.Host(2).Runs(processId));
        Assert.True(_cluster.Cluster.TryGetGrainContext(process.GetGrainId(), out var activation));
        Assert.Equal(_cluster.Silos[2].SiloAddress, activation.Address.SiloAddress);

        // A retried call (a lost response, say) must not start a second process.
        Assert.Equal(result, await process.StartAsync(request));
        Assert.Equal(1, _cluster.Starts(content));

        await process.StopAsync();
        Assert.False(_cluster.Host(2).Runs(processId));
        Assert.True(_cluster.Host(2).Stopped(processId));
    }

    [Fact]
    public async Task A_process_whose_grain_was_collected_is_still_stopped_on_its_own_node()
    {
        // The process grain is only a face: idle collection (Orleans:CollectionAgeSeconds) may take it while its
        // process serves for hours, and the ContentGrain may be a new activation on another silo by then (its silo
        // restarted). A stop must still reach the node that runs the process, not a fresh process grain placed
        // wherever is least loaded at that moment.
        _cluster.FeedLoads(new Load(0, 0), new Load(1, 5), new Load(2, 5));
        var content = await _cluster.CreateContentAsync(min: 1, max: 1);
        var grain = _cluster.Content(content);
        await grain.EnsureMinimumAsync();
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 1, "the minimum process runs");
        var (silo, first) = _cluster.Running(content)[0];
        Assert.Equal(0, silo);

        await _cluster.Cluster.DeactivateAsync(_cluster.Client.GetGrain<IProcessGrain>(first.Id));
        Assert.True(_cluster.Cluster.TryGetGrainContext(grain.GetGrainId(), out var activation));
        var contentSilo = _cluster.IndexOf(activation.Address.SiloAddress!.ToParsableString());
        // A silo that has never talked to that process grain, so has no cached idea where it was.
        var elsewhere = _cluster.LiveSilos.First(s => s != 0 && s != contentSilo);
        await _cluster.Cluster.MigrateAsync(grain, _cluster.Silos[elsewhere].SiloAddress);
        var adopted = await grain.GetProcessesAsync();
        Assert.Equal(first.Id, Assert.Single(adopted).ProcessId);
        _cluster.FeedLoads(new Load(0, 5), new Load(1, 0), new Load(2, 0));

        await grain.RestartAsync();

        Assert.True(_cluster.Host(0).Stopped(first.Id), "the old process was not stopped on its node");
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 1 && _cluster.Starts(content) == 2,
            "the replacement alone runs");
        Assert.DoesNotContain(_cluster.Running(content), r => r.Process.Id == first.Id);
    }
}
