using System.Globalization;
using Connect.Runtime.Processes;
using Connect.Runtime.Sandbox;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

/// <summary>
/// Real cgroup v1 scopes (the kind of VM CI and development run on: root, v1 controllers under /sys/fs/cgroup), each
/// test under its own root "connect-test-&lt;guid&gt;" that is removed afterwards.
/// </summary>
public sealed class CgroupV1LimiterTests : IAsyncLifetime
{
    private const string Python = "/usr/bin/python3";
    private const long MiB = 1024 * 1024;

    // Touches every page (b'x' * n writes them), so the memory is resident rather than merely reserved.
    private const string Allocate300MiB = "b = []\nfor i in range(300): b.append(b'x' * 1048576)\nprint('allocated', flush=True)";

    private readonly string _root = "connect-test-" + Guid.NewGuid().ToString("N");
    private readonly TestDirectory _dir = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var controller in new[] { "memory", "pids", "cpu" })
        {
            var root = Path.Combine(CgroupV1Limiter.MountPoint, controller, _root);
            var all = Cgroups.DescendantsDeepestFirst(root).Append(root).Where(Directory.Exists).ToList();
            await Cgroups.KillAllAsync(all, useCgroupKill: false, NullLogger.Instance);
            foreach (var directory in all)
            {
                await Cgroups.RemoveAsync(directory, NullLogger.Instance);
            }
        }
        _dir.Dispose();
    }

    private CgroupV1Limiter Limiter()
    {
        RequireCgroupV1();
        var limiter = CgroupV1Limiter.TryCreate(CgroupV1Limiter.MountPoint, _root, "node-a", NullLogger.Instance, out var reason);
        Assert.True(limiter is not null, $"cgroup v1 limiter could not be set up: {reason}");
        return limiter;
    }

    private static void RequireCgroupV1()
    {
        Assert.True(Environment.IsPrivilegedProcess, "These tests need root (writing cgroup v1 hierarchies); run them as root, as CI does.");
        foreach (var controller in new[] { "memory", "pids", "cpu" })
        {
            Assert.True(File.Exists(Path.Combine(CgroupV1Limiter.MountPoint, controller, "cgroup.procs")),
                $"These tests need the cgroup v1 {controller} controller mounted at /sys/fs/cgroup/{controller}.");
        }
    }

    private LaunchSpec Spec(string program, params string[] args) => new(program, args, _dir.Path, new Dictionary<string, string>());

    private static string NewName() => "t-" + Guid.NewGuid().ToString("N");

    private static async Task<(int Code, IReadOnlyList<string> Output)> RunAsync(LaunchSpec spec)
    {
        var handle = ProcessLauncher.Start(spec, NullLogger.Instance);
        var code = await handle.Exited.WaitAsync(TimeSpan.FromSeconds(60));
        await handle.OutputCompleted.WaitAsync(TimeSpan.FromSeconds(30));
        await handle.DisposeAsync();
        return (code, handle.Log.All());
    }

    private static bool IsAlive(int pid) => ProcessGroups.ReadStat($"/proc/{pid}").State is not ('\0' or 'Z' or 'X');

    [Fact]
    public void Detect_picks_cgroup_v1_on_this_host_and_notes_what_it_enforces()
    {
        RequireCgroupV1();
        var limiter = ResourceLimiter.Detect(new ApplicationsOptions { CgroupRoot = _root }, "node-a", NullLogger.Instance);

        Assert.Equal("cgroup v1", limiter.Mechanism);
        Assert.Contains(limiter.Notes, n => n.StartsWith("memory:", StringComparison.Ordinal));
        Assert.Contains(limiter.Notes, n => n.StartsWith("cpu: cpu.cfs_quota_us", StringComparison.Ordinal));
        Assert.True(Directory.Exists(Path.Combine(CgroupV1Limiter.MountPoint, "pids", _root, "node-a")));
    }

    [Fact]
    public async Task A_process_over_its_memory_limit_is_killed_and_ExplainExit_says_why()
    {
        var limiter = Limiter();
        var logFile = _dir.Combine("logs", "out.log");
        await using var scope = limiter.Create(NewName(), new ResourceLimits(64 * MiB, null, 64));
        var spec = Spec(Python, "-c", Allocate300MiB) with { LogFile = logFile, Environment = new Dictionary<string, string> { ["MARK"] = "kept" } };

        var wrapped = scope.Apply(spec);
        Assert.Equal(spec.WorkingDirectory, wrapped.WorkingDirectory);
        Assert.Equal(logFile, wrapped.LogFile);
        Assert.Equal("kept", wrapped.Environment["MARK"]);
        Assert.Equal(spec.InheritEnvironment, wrapped.InheritEnvironment);

        var (code, output) = await RunAsync(wrapped);

        Assert.Equal(137, code);
        Assert.DoesNotContain("allocated", output);
        var explanation = scope.ExplainExit(code);
        Assert.Equal("the process was killed because it exceeded its memory limit of 64 MiB", explanation);
    }

    [Fact]
    public async Task The_same_process_without_a_memory_limit_exits_normally()
    {
        var limiter = Limiter();
        await using var scope = limiter.Create(NewName(), ResourceLimits.None);

        var (code, output) = await RunAsync(scope.Apply(Spec(Python, "-c", Allocate300MiB)));

        Assert.Equal(0, code);
        Assert.Contains("allocated", output);
        Assert.Null(scope.ExplainExit(code));
    }

    [Fact]
    public async Task The_process_cap_stops_a_fork_bomb_and_disposing_the_scope_leaves_nothing_alive()
    {
        var limiter = Limiter();
        var scope = limiter.Create(NewName(), new ResourceLimits(null, null, 20));
        const string script = """
            import subprocess
            pids = []
            for i in range(100):
                try:
                    pids.append(subprocess.Popen(["sleep", "30"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).pid)
                except OSError:
                    pass
            print("started", len(pids), *pids, flush=True)
            """;
        // The handle is disposed only after the scope: its process-group kill would otherwise end the sleeps first.
        var handle = ProcessLauncher.Start(scope.Apply(Spec(Python, "-c", script)), NullLogger.Instance);
        try
        {
            var code = await handle.Exited.WaitAsync(TimeSpan.FromSeconds(60));
            await handle.OutputCompleted.WaitAsync(TimeSpan.FromSeconds(30));
            var output = handle.Log.All();

            Assert.Equal(0, code);
            var fields = Assert.Single(output, l => l.StartsWith("started ", StringComparison.Ordinal)).Split(' ');
            var started = int.Parse(fields[1], CultureInfo.InvariantCulture);
            var pids = fields.Skip(2).Select(f => int.Parse(f, CultureInfo.InvariantCulture)).ToList();
            Assert.InRange(started, 5, 24);
            Assert.All(pids, pid => Assert.True(IsAlive(pid), $"sleep {pid} should still run inside the scope"));
            Assert.Equal(pids.Order(), Cgroups.ReadProcs(scope.Paths[1]).Order());
            Assert.Contains("20 processes", scope.ExplainExit(1), StringComparison.Ordinal);

            await scope.DisposeAsync();

            Assert.All(pids, pid => Assert.False(IsAlive(pid), $"sleep {pid} survived disposing its scope"));
            Assert.All(scope.Paths, p => Assert.False(Directory.Exists(p), $"{p} was not removed"));
        }
        finally
        {
            await scope.DisposeAsync();
            await handle.DisposeAsync();
        }
    }

    [Fact]
    public async Task KillAllAsync_kills_a_grandchild_that_left_the_process_group()
    {
        var limiter = Limiter();
        await using var scope = limiter.Create(NewName(), new ResourceLimits(256 * MiB, null, 64));
        // start_new_session calls setsid(2) in the child before exec, and Popen returns only after the exec: the
        // grandchild has left the group by the time its pid is printed (the setsid program would race with the stop).
        const string script = """
            import subprocess, time
            child = subprocess.Popen(["sleep", "300"], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print("grandchild", child.pid, flush=True)
            time.sleep(300)
            """;
        var handle = ProcessLauncher.Start(scope.Apply(Spec(Python, "-c", script)), NullLogger.Instance);
        var grandchild = await GrandchildAsync(handle);
        Assert.True(IsAlive(grandchild));

        await handle.StopAsync(TimeSpan.FromSeconds(5));
        Assert.True(IsAlive(grandchild), "the grandchild was expected to survive the process-group stop (it called setsid)");

        await scope.KillAllAsync();

        Assert.False(IsAlive(grandchild), $"grandchild {grandchild} survived KillAllAsync");
        Assert.Empty(scope.Paths.SelectMany(Cgroups.ReadProcs));
    }

    [Fact]
    public async Task CleanupStale_kills_processes_a_previous_run_left_in_its_scopes_and_removes_them()
    {
        var previous = Limiter();
        var scope = previous.Create(NewName(), new ResourceLimits(128 * MiB, 0.5, 32));
        var handle = ProcessLauncher.Start(scope.Apply(Spec("/bin/sleep", "300")), NullLogger.Instance);
        try
        {
            // The join wrapper writes cgroup.procs before exec'ing sleep; wait for that event rather than a fixed time.
            await WaitUntilAsync(() => Cgroups.ReadProcs(scope.Paths[0]).Contains(handle.Pid));
            Assert.False(handle.HasExited);

            var next = Limiter();
            var cleanup = await next.CleanupStaleAsync();

            Assert.Equal(new StaleCleanup(1, 1), cleanup);
            Assert.Equal(137, await handle.Exited.WaitAsync(TimeSpan.FromSeconds(10)));
            Assert.All(scope.Paths, p => Assert.False(Directory.Exists(p), $"{p} was not removed"));
            Assert.Equal(new StaleCleanup(0, 0), await next.CleanupStaleAsync());
        }
        finally
        {
            await handle.DisposeAsync();
        }
    }

    [Fact]
    public async Task A_cpu_limit_throttles_a_busy_loop()
    {
        var limiter = Limiter();
        await using var scope = limiter.Create(NewName(), new ResourceLimits(null, 0.2, 64));
        const string script = """
            import time
            end = time.monotonic() + 1.5
            while time.monotonic() < end:
                pass
            print("cpu", time.process_time(), flush=True)
            """;

        var (code, output) = await RunAsync(scope.Apply(Spec(Python, "-c", script)));

        Assert.Equal(0, code);
        var cpu = double.Parse(Assert.Single(output, l => l.StartsWith("cpu ", StringComparison.Ordinal))[4..], CultureInfo.InvariantCulture);
        // 0.2 CPUs over 1.5 s is 0.3 s; unthrottled it would be close to 1.5 s.
        Assert.InRange(cpu, 0.0, 0.75);
    }

    [Fact]
    public async Task A_process_that_cannot_join_its_scope_does_not_run_its_program()
    {
        var limiter = Limiter();
        var scope = limiter.Create(NewName(), new ResourceLimits(64 * MiB, null, 64));
        var marker = _dir.Combine("ran");
        var spec = scope.Apply(Spec("/bin/sh", "-c", $"touch '{marker}'"));
        await scope.DisposeAsync();

        var (code, output) = await RunAsync(spec);

        Assert.Equal(125, code);
        Assert.Contains(output, l => l.StartsWith("connect: could not join resource limit group", StringComparison.Ordinal));
        Assert.False(File.Exists(marker), "the program ran although joining its scope failed");
    }

    private static async Task<int> GrandchildAsync(ProcessHandle handle)
    {
        var line = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        handle.Log.LineAdded += l =>
        {
            if (l.StartsWith("grandchild ", StringComparison.Ordinal))
            {
                line.TrySetResult(l);
            }
        };
        // The line may have arrived before we subscribed.
        if (handle.Log.All().FirstOrDefault(l => l.StartsWith("grandchild ", StringComparison.Ordinal)) is { } early)
        {
            line.TrySetResult(early);
        }
        var text = await line.Task.WaitAsync(TimeSpan.FromSeconds(30));
        return int.Parse(text["grandchild ".Length..], CultureInfo.InvariantCulture);
    }

    // cgroup.procs offers no change notification in v1; poll it briefly.
    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        var start = TimeProvider.System.GetTimestamp();
        while (!condition())
        {
            Assert.True(TimeProvider.System.GetElapsedTime(start) < TimeSpan.FromSeconds(10), "condition not met within 10 s");
            await Task.Delay(10);
        }
    }
}

public sealed class RlimitLimiterTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task The_address_space_limit_makes_a_big_allocation_fail()
    {
        Assert.True(File.Exists(RlimitLimiter.DefaultPrlimit), "This test needs util-linux prlimit at /usr/bin/prlimit.");
        var limiter = new RlimitLimiter(RlimitLimiter.DefaultPrlimit);
        await using var scope = limiter.Create("rlimit-" + Guid.NewGuid().ToString("N"), new ResourceLimits(200L * 1024 * 1024, 1.0, 512));
        const string script = "b = bytearray(400 * 1024 * 1024)\nprint('allocated', flush=True)";
        var spec = new LaunchSpec("/usr/bin/python3", ["-c", script], _dir.Path, new Dictionary<string, string>());

        var limited = scope.Apply(spec);
        Assert.Equal(RlimitLimiter.DefaultPrlimit, limited.FileName);
        Assert.Equal(["--as=209715200", "--nproc=512", "--", "/usr/bin/python3", "-c", script], limited.Arguments);

        var (code, output) = await RunAsync(limited);
        Assert.NotEqual(0, code);
        Assert.Contains(output, l => l.Contains("MemoryError", StringComparison.Ordinal));

        var (unlimitedCode, unlimitedOutput) = await RunAsync(spec);
        Assert.Equal(0, unlimitedCode);
        Assert.Contains("allocated", unlimitedOutput);
    }

    [Fact]
    public void Detect_falls_back_to_rlimits_when_cgroups_are_turned_off()
    {
        Assert.True(File.Exists(RlimitLimiter.DefaultPrlimit), "This test needs util-linux prlimit at /usr/bin/prlimit.");
        var limiter = ResourceLimiter.Detect(new ApplicationsOptions { CgroupRoot = "" }, "node-a", NullLogger.Instance);

        Assert.Equal("rlimit", limiter.Mechanism);
        Assert.Contains(limiter.Notes, n => n.StartsWith("cpu: NOT enforced", StringComparison.Ordinal));
    }

    [Fact]
    public void Nothing_to_limit_leaves_the_launch_unchanged()
    {
        var limiter = new RlimitLimiter(RlimitLimiter.DefaultPrlimit);
        var scope = limiter.Create("x", ResourceLimits.None);
        var spec = new LaunchSpec("/bin/true", [], _dir.Path, new Dictionary<string, string>());
        Assert.Same(spec, scope.Apply(spec));
    }

    private static async Task<(int Code, IReadOnlyList<string> Output)> RunAsync(LaunchSpec spec)
    {
        var handle = ProcessLauncher.Start(spec, NullLogger.Instance);
        var code = await handle.Exited.WaitAsync(TimeSpan.FromSeconds(60));
        await handle.OutputCompleted.WaitAsync(TimeSpan.FromSeconds(30));
        await handle.DisposeAsync();
        return (code, handle.Log.All());
    }
}
