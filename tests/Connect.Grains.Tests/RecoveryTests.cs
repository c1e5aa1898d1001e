using Connect.Abstractions;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Runtime;

namespace Connect.Grains.Tests;

/// <summary>A silo dies under a ContentGrain: its own cluster, since the test kills part of it.</summary>
public sealed class RecoveryTests : IAsyncLifetime
{
    private GrainCluster _cluster = null!;

    public async Task InitializeAsync() => _cluster = await GrainCluster.StartAsync();

    public async Task DisposeAsync() => await _cluster.DisposeAsync();

    [Fact]
    public async Task A_content_grain_whose_silo_dies_adopts_the_survivors_processes_and_restores_its_minimum()
    {
        var content = await _cluster.CreateContentAsync(min: 3, max: 3);
        var grain = _cluster.Content(content);
        Assert.Empty(await grain.GetProcessesAsync());
        Assert.True(_cluster.Cluster.TryGetGrainContext(grain.GetGrainId(), out var activation));
        var doomed = _cluster.IndexOf(activation.Address.SiloAddress!.ToParsableString());
        var survivors = _cluster.LiveSilos.Where(s => s != doomed).ToArray();

        // One process on every node, the content grain's own node included.
        _cluster.FeedEqualLoads();
        await grain.EnsureMinimumAsync();
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.LiveSilos.All(s => _cluster.Host(s).Running(content).Count == 1), "one process runs on each node",
            state: () => "running per node: " + string.Join(", ", _cluster.LiveSilos.Select(s => _cluster.Host(s).Running(content).Count)) + $"; starts {_cluster.Starts(content)}");
        var onSurvivors = survivors.SelectMany(s => _cluster.Host(s).Running(content)).Select(p => p.Id).Order().ToArray();

        var deadSilo = _cluster.SiloName(doomed);
        var deadAddress = _cluster.Silos[doomed].SiloAddress;
        _cluster.Host(doomed).Die();
        await _cluster.Cluster.KillSiloAsync(_cluster.Silos[doomed]);
        await WaitUntilDeclaredDeadAsync(deadAddress, survivors);

        // The next call activates the grain on a survivor, which asks the survivors' node grains what runs.
        var adopted = await grain.GetProcessesAsync();
        Assert.True(_cluster.Cluster.TryGetGrainContext(grain.GetGrainId(), out var reactivated));
        Assert.Contains(_cluster.IndexOf(reactivated.Address.SiloAddress!.ToParsableString()), survivors);
        // No orphans: every process a survivor runs is known; none of the dead node's is.
        Assert.Equal(onSurvivors, adopted.Select(p => p.ProcessId).Order().ToArray());
        Assert.All(adopted, p => Assert.Contains(_cluster.IndexOf(p.Silo), survivors));

        // The heartbeat of the lowest survivor reports the loss; the minimum comes back on the survivors.
        _cluster.FeedLoads(survivors.Select(s => new Load(s, 1)).ToArray());
        await grain.NodeLostAsync(deadSilo);
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 3, "three processes run on the survivors");
        var known = await _cluster.KnownProcessesAsync(content, 3);
        Assert.Equal(_cluster.Running(content).Select(r => r.Process.Id).Order(), known.Select(p => p.ProcessId).Order());
        Assert.DoesNotContain(known, p => p.Silo == deadSilo);

        // No double counts: at max_processes, a connection that finds every process saturated starts nothing more.
        var startsBefore = _cluster.Starts(content);
        var route = await grain.AcquireProcessAsync(known.Select(p => p.ProcessId).ToArray());
        Assert.Null(route.Process);
        Assert.Null(route.Error);
        Assert.Equal(3, route.All.Count);
        Assert.Equal(startsBefore, _cluster.Starts(content));
        Assert.Equal(3, _cluster.Running(content).Count);

        // The adopted processes are the grain's to stop like its own (a redeploy, a restart).
        await grain.RestartAsync();
        Assert.All(onSurvivors, id => Assert.True(survivors.Any(s => _cluster.Host(s).Stopped(id)), $"adopted process {id} was not stopped"));

        // A node grain for the dead silo cannot exist anywhere else: asking it fails rather than answering empty.
        var dead = _cluster.Client.GetGrain<INodeGrain>(deadSilo);
        var failure = await Assert.ThrowsAnyAsync<Exception>(() => dead.ListProcessesAsync(content).WaitAsync(TimeSpan.FromSeconds(20)));
        Assert.IsType<SiloUnavailableException>(failure);
        Assert.Contains(deadSilo, failure.Message);
    }

    [Fact]
    public async Task Processes_of_a_node_that_dies_under_a_surviving_content_grain_are_dropped_and_replaced()
    {
        var content = await _cluster.CreateContentAsync(min: 3, max: 3);
        var grain = _cluster.Content(content);
        Assert.Empty(await grain.GetProcessesAsync());
        Assert.True(_cluster.Cluster.TryGetGrainContext(grain.GetGrainId(), out var activation));
        var home = _cluster.IndexOf(activation.Address.SiloAddress!.ToParsableString());
        var doomed = _cluster.LiveSilos.First(s => s != home);
        var survivors = _cluster.LiveSilos.Where(s => s != doomed).ToArray();
        _cluster.FeedEqualLoads();
        await grain.EnsureMinimumAsync();
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.LiveSilos.All(s => _cluster.Host(s).Running(content).Count == 1), "one process runs on each node",
            state: () => "running per node: " + string.Join(", ", _cluster.LiveSilos.Select(s => _cluster.Host(s).Running(content).Count)) + $"; starts {_cluster.Starts(content)}");
        await _cluster.KnownProcessesAsync(content, 3);
        var deadSilo = _cluster.SiloName(doomed);
        var deadAddress = _cluster.Silos[doomed].SiloAddress;

        _cluster.Host(doomed).Die();
        await _cluster.Cluster.KillSiloAsync(_cluster.Silos[doomed]);
        await WaitUntilDeclaredDeadAsync(deadAddress, survivors);
        // Until the loss is handled the registry still lists the dead node, as the emptiest one: placement must
        // not pick it (it is no longer a compatible silo).
        _cluster.FeedLoads(new Load(doomed, 0), new Load(survivors[0], 1), new Load(survivors[1], 1));
        await grain.NodeLostAsync(deadSilo);

        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 3, "three processes run on the survivors");
        var known = await _cluster.KnownProcessesAsync(content, 3);
        Assert.DoesNotContain(known, p => p.Silo == deadSilo);
        Assert.Equal(_cluster.Running(content).Select(r => r.Process.Id).Order(), known.Select(p => p.ProcessId).Order());
        Assert.True(_cluster.Cluster.TryGetGrainContext(grain.GetGrainId(), out var still));
        Assert.Equal(activation, still);
        // A lost node is not the content's failure.
        Assert.Null(await grain.GetCrashLoopAsync());
        Assert.Null((await grain.AcquireProcessAsync([])).Error);
    }

    /// <summary>Failure detection is Orleans's, on real time: about a second with the probes configured here.</summary>
    private async Task WaitUntilDeclaredDeadAsync(SiloAddress dead, IEnumerable<int> survivors)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        var memberships = survivors.Select(s => _cluster.Silos[s].ServiceProvider.GetRequiredService<IClusterMembershipService>()).ToArray();
        while (!memberships.All(m => m.CurrentSnapshot.GetSiloStatus(dead) == SiloStatus.Dead))
        {
            Assert.True(DateTime.UtcNow < deadline, $"{dead} was not declared dead within 20 s");
            await Task.Delay(50);
        }
    }
}
