using Connect.Abstractions;

namespace Connect.Grains.Tests;

/// <summary>min_processes, replacement of exits and the failure hold, on the fake clock.</summary>
[Collection(SharedClusterCollection.Name)]
public sealed class MinimumProcessesTests(SharedCluster shared) : IAsyncLifetime
{
    private readonly GrainCluster _cluster = shared.Grains;

    public Task InitializeAsync() => _cluster.ResetAsync();

    public Task DisposeAsync() => Task.CompletedTask;

    [Fact]
    public async Task EnsureMinimum_starts_exactly_the_minimum_and_an_exit_is_replaced()
    {
        var content = await _cluster.CreateContentAsync(min: 2, max: 4);
        var grain = _cluster.Content(content);

        await grain.EnsureMinimumAsync();
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 2, "two processes run");
        await _cluster.KnownProcessesAsync(content, 2);
        // Asking again while they run (a settings change, a node start) adds nothing.
        await grain.EnsureMinimumAsync();
        Assert.Equal(2, (await grain.GetProcessesAsync()).Count);
        Assert.Equal(2, _cluster.Starts(content));
        Assert.Equal(2, _cluster.Running(content).Count);

        var (silo, crashed) = _cluster.Running(content)[0];
        await _cluster.Host(silo).ExitAsync(crashed.Id, exitCode: 1);

        // An isolated crash of a process that served is replaced at once, without waiting for the clock.
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 2 && _cluster.Starts(content) == 3, "the crashed process is replaced");
        var known = await _cluster.KnownProcessesAsync(content, 2);
        Assert.DoesNotContain(known, p => p.ProcessId == crashed.Id);
        Assert.Equal(_cluster.Running(content).Select(r => r.Process.Id).Order(), known.Select(p => p.ProcessId).Order());
    }

    [Fact]
    public async Task A_failed_start_holds_new_starts_for_the_backoff()
    {
        var content = await _cluster.CreateContentAsync(min: 1, max: 3);
        var grain = _cluster.Content(content);
        _cluster.Nodes.FailNextStarts(content, 1, "ModuleNotFoundError: No module named 'flask'");

        var first = await grain.AcquireProcessAsync([]);

        Assert.Null(first.Process);
        Assert.Equal("ModuleNotFoundError: No module named 'flask'", first.Error);
        Assert.Equal(1, _cluster.Starts(content));

        // Within the hold a connection gets the failure back, and neither it nor min_processes starts anything.
        _cluster.Time.Advance(TimeSpan.FromSeconds(GrainCluster.BackoffSeconds - 1));
        var held = await grain.AcquireProcessAsync([]);
        Assert.Equal(first.Error, held.Error);
        Assert.Contains("ModuleNotFoundError: No module named 'flask'", held.LogTail);
        Assert.Equal(1, _cluster.Starts(content));
        Assert.Empty(_cluster.Running(content));

        // At the end of the hold the minimum is retried by the grain's own timer, on the grain clock.
        _cluster.FeedEqualLoads();
        _cluster.Time.Advance(TimeSpan.FromSeconds(1));
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 1, "the minimum process runs after the hold");
        Assert.Equal(2, _cluster.Starts(content));
        var route = await grain.AcquireProcessAsync([]);
        Assert.Null(route.Error);
        Assert.Equal(_cluster.Running(content)[0].Process.Id, route.Process?.ProcessId);
        Assert.Null(await grain.GetCrashLoopAsync());
    }

    [Fact]
    public async Task Repeated_failures_back_off_doubling_and_end_in_a_crash_loop_until_a_start_succeeds()
    {
        var content = await _cluster.CreateContentAsync(min: 1, max: 3);
        var grain = _cluster.Content(content);
        _cluster.Nodes.FailNextStarts(content, 5, "SyntaxError: invalid syntax");

        await grain.EnsureMinimumAsync();
        // Holds of 10, 20, 40 and 60 s (the ceiling) between the five failed starts; none comes a second early.
        foreach (var (hold, attempt) in new[] { (10, 2), (20, 3), (40, 4), (60, 5) })
        {
            await _cluster.Nodes.WaitUntilAsync(() => _cluster.Starts(content) == attempt - 1, $"start {attempt - 1} was attempted");
            // Returns once the failure is recorded (it waits for a start in flight), so the hold runs from now.
            Assert.Equal("SyntaxError: invalid syntax", (await grain.AcquireProcessAsync([])).Error);
            Assert.Null(await grain.GetCrashLoopAsync());
            _cluster.Time.Advance(TimeSpan.FromSeconds(hold - 1));
            Assert.Equal("SyntaxError: invalid syntax", (await grain.AcquireProcessAsync([])).Error);
            Assert.Equal(attempt - 1, _cluster.Starts(content));
            _cluster.FeedEqualLoads();
            _cluster.Time.Advance(TimeSpan.FromSeconds(1));
        }
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Starts(content) == 5, "start 5 was attempted");
        var loop = await WaitForCrashLoopAsync(grain);
        Assert.Equal(5, loop.Failures);
        Assert.Equal("SyntaxError: invalid syntax", loop.LastError);
        var route = await grain.AcquireProcessAsync([]);
        Assert.True(route.CrashLoop);
        Assert.Contains("failed 5 times", route.Error);

        // After the last hold a start succeeds, and the item is no longer reported as crash-looping.
        _cluster.FeedEqualLoads();
        _cluster.Time.Advance(TimeSpan.FromSeconds(60));
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 1, "the minimum process runs again");
        await _cluster.KnownProcessesAsync(content, 1);
        Assert.Null(await grain.GetCrashLoopAsync());
    }

    /// <summary>The fifth failure is recorded when the failed start's answer reaches the grain, just after the host saw it.</summary>
    private static async Task<CrashLoopState> WaitForCrashLoopAsync(IContentGrain grain)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            if (await grain.GetCrashLoopAsync() is { } loop)
            {
                return loop;
            }
            Assert.True(DateTime.UtcNow < deadline, "the item was not reported as crash-looping");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_start_refused_by_a_full_node_is_placed_on_another_without_counting_a_failure()
    {
        // The registry (a heartbeat old) says B is empty; B itself is full and refuses.
        _cluster.FeedLoads(new Load(0, 5), new Load(1, 0), new Load(2, 3));
        _cluster.Host(1).ClaimedCount = GrainCluster.MaxProcessesPerNode;
        var checksBefore = _cluster.Host(1).CapacityChecks;
        var content = await _cluster.CreateContentAsync(min: 0, max: 3);
        var grain = _cluster.Content(content);

        var first = await grain.AcquireProcessAsync([]);

        Assert.True(_cluster.Host(1).CapacityChecks > checksBefore, "B was never asked: the test did not exercise a refusal");
        Assert.Null(first.Error);
        Assert.Equal(_cluster.SiloName(2), first.Process?.Silo);
        Assert.Empty(_cluster.Host(1).Running(content));
        // No failure was recorded: the next connection that needs a process gets one at once (no hold).
        var second = await grain.AcquireProcessAsync([first.Process!.ProcessId]);
        Assert.Null(second.Error);
        Assert.NotNull(second.Process);
        Assert.Null(await grain.GetCrashLoopAsync());
    }

    [Fact]
    public async Task A_minimum_process_refused_by_a_full_node_is_placed_on_another()
    {
        _cluster.FeedLoads(new Load(0, 5), new Load(1, 0), new Load(2, 3));
        _cluster.Host(1).ClaimedCount = GrainCluster.MaxProcessesPerNode;
        var content = await _cluster.CreateContentAsync(min: 1, max: 3);

        await _cluster.Content(content).EnsureMinimumAsync();

        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Host(2).Running(content).Count == 1, "the minimum process runs on C");
        Assert.Single(_cluster.Running(content));
        Assert.Null(await _cluster.Content(content).GetCrashLoopAsync());
    }

    [Fact]
    public async Task When_no_node_can_take_a_minimum_process_the_grain_retries_later_not_in_a_loop()
    {
        // Every node is full though the registry does not know yet (or the only node drains): each start is refused.
        foreach (var silo in _cluster.LiveSilos)
        {
            _cluster.Host(silo).ClaimedCount = GrainCluster.MaxProcessesPerNode;
        }
        int Checks() => _cluster.LiveSilos.Sum(s => _cluster.Host(s).CapacityChecks);
        var before = Checks();
        var content = await _cluster.CreateContentAsync(min: 1, max: 3);
        var grain = _cluster.Content(content);

        await grain.EnsureMinimumAsync();
        await _cluster.Nodes.WaitUntilAsync(() => Checks() > before, "a start was attempted", TimeSpan.FromSeconds(5));
        // "Nothing more happens" can only be watched for a while; a retry loop makes thousands of attempts in this time.
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        var attempts = Checks() - before;
        Assert.InRange(attempts, 1, 5);

        // Room appears; the retry comes with the grain clock, and nothing was held as a failure.
        foreach (var silo in _cluster.LiveSilos)
        {
            _cluster.Host(silo).ClaimedCount = null;
        }
        _cluster.FeedEqualLoads();
        _cluster.Time.Advance(TimeSpan.FromSeconds(5));
        await _cluster.Nodes.WaitUntilAsync(() => _cluster.Running(content).Count == 1, "the minimum process runs once there is room");
        Assert.Null(await grain.GetCrashLoopAsync());
    }
}
