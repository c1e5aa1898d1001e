using Connect.Runtime.Processes;
using Connect.Runtime.Sandbox;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

public sealed class ResourceLimitsResolutionTests
{
    private const long MiB = 1024 * 1024;

    private static ApplicationsOptions Options(long defaultMb = 2048, long maxMb = 16384, double defaultCpu = 0, double maxCpu = 0) => new()
    {
        DefaultMemoryLimitMB = defaultMb,
        MaxMemoryLimitMB = maxMb,
        DefaultCpuLimit = defaultCpu,
        MaxCpuLimit = maxCpu,
        ProcessLimit = 300,
    };

    [Theory]
    [InlineData(null, 2048 * MiB)]
    [InlineData(0L, 2048 * MiB)]
    [InlineData(-5L, 2048 * MiB)]
    [InlineData(512 * MiB, 512 * MiB)]
    [InlineData(32768 * MiB, 16384 * MiB)]
    public void Memory_falls_back_to_the_default_and_is_capped_at_the_maximum(long? perContent, long expected)
    {
        Assert.Equal(expected, ResourceLimiter.ResourceLimitsFor(perContent, null, Options()).MemoryBytes);
    }

    [Fact]
    public void A_default_of_zero_means_unlimited_and_no_maximum_means_any_value()
    {
        var o = Options(defaultMb: 0, maxMb: 0);
        Assert.Null(ResourceLimiter.ResourceLimitsFor(null, null, o).MemoryBytes);
        Assert.Null(ResourceLimiter.ResourceLimitsFor(0, 0, o).MemoryBytes);
        Assert.Equal(1L << 40, ResourceLimiter.ResourceLimitsFor(1L << 40, null, o).MemoryBytes);
    }

    [Theory]
    [InlineData(null, 0.0, 0.0, null)]
    [InlineData(0.0, 1.5, 0.0, 1.5)]
    [InlineData(null, 1.5, 0.0, 1.5)]
    [InlineData(2.0, 1.5, 0.0, 2.0)]
    [InlineData(8.0, 1.0, 4.0, 4.0)]
    [InlineData(double.NaN, 1.0, 0.0, 1.0)]
    public void Cpu_falls_back_to_the_default_and_is_capped_at_the_maximum(double? perContent, double defaultCpu, double maxCpu, double? expected)
    {
        Assert.Equal(expected, ResourceLimiter.ResourceLimitsFor(null, perContent, Options(defaultCpu: defaultCpu, maxCpu: maxCpu)).Cpus);
    }

    [Fact]
    public void The_process_cap_is_always_the_configured_limit()
    {
        Assert.Equal(300, ResourceLimiter.ResourceLimitsFor(null, null, Options()).MaxProcesses);
        Assert.Equal(300, ResourceLimiter.ResourceLimitsFor(64 * MiB, 2, Options()).MaxProcesses);
    }

    [Fact]
    public void Valid_content_limits_have_no_errors()
    {
        Assert.Empty(ResourceLimiter.ValidateContentLimits(null, null, Options(maxCpu: 4)));
        Assert.Empty(ResourceLimiter.ValidateContentLimits(0, 0, Options(maxCpu: 4)));
        Assert.Empty(ResourceLimiter.ValidateContentLimits(16384 * MiB, 4, Options(maxCpu: 4)));
        Assert.Empty(ResourceLimiter.ValidateContentLimits(1L << 50, 1000, Options(maxMb: 0, maxCpu: 0)));
    }

    [Fact]
    public void Negative_or_too_large_limits_are_errors_naming_the_maximum()
    {
        Assert.Equal(
            ["memory_limit must be 0 (use the server's default) or a positive number of bytes.",
             "cpu_limit must be 0 (use the server's default) or a positive number of CPUs."],
            ResourceLimiter.ValidateContentLimits(-1, -0.5, Options()));

        Assert.Equal(
            ["memory_limit must not exceed the maximum of 17179869184 bytes (16 GiB).",
             "cpu_limit must not exceed the maximum of 2.5 CPUs."],
            ResourceLimiter.ValidateContentLimits(16384 * MiB + 1, 3, Options(maxCpu: 2.5)));

        Assert.Single(ResourceLimiter.ValidateContentLimits(null, double.PositiveInfinity, Options()));
    }
}

/// <summary>The cgroup v2 computations, which this project's machines (cgroup v1) cannot exercise for real.</summary>
public sealed class CgroupV2ComputationTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Theory]
    [InlineData("0::/system.slice/connect.service\n", "/system.slice/connect.service")]
    [InlineData("12:pids:/\n1:name=systemd:/x\n0::/user.slice/session-1.scope\n", "/user.slice/session-1.scope")]
    [InlineData("0::/\n", "/")]
    [InlineData("4:memory:/process_api/abc\n1:cpu:/\n", null)]
    [InlineData("0::/gone (deleted)\n", null)]
    public void OwnCgroup_reads_the_unified_entry(string procCgroup, string? expected)
    {
        Assert.Equal(expected, CgroupV2Limiter.OwnCgroup(procCgroup));
    }

    [Theory]
    [InlineData(null, "/system.slice/connect.service", "/sys/fs/cgroup/system.slice/connect.service")]
    [InlineData(null, "/system.slice/connect.service/server", "/sys/fs/cgroup/system.slice/connect.service")]
    [InlineData(null, "/", "/sys/fs/cgroup")]
    [InlineData("connect.slice/limits", "/x", "/sys/fs/cgroup/connect.slice/limits")]
    [InlineData("/connect.slice/limits/", "/x", "/sys/fs/cgroup/connect.slice/limits")]
    [InlineData("/sys/fs/cgroup/delegated", "/x", "/sys/fs/cgroup/delegated")]
    public void ResolveRoot_uses_the_configured_root_or_our_own_cgroup(string? configured, string own, string expected)
    {
        Assert.Equal(expected, CgroupV2Limiter.ResolveRoot("/sys/fs/cgroup", configured, own));
    }

    [Fact]
    public void Controllers_requires_memory_and_pids_and_takes_cpu_when_offered()
    {
        var (enable, missing) = CgroupV2Limiter.Controllers("cpuset cpu io memory hugetlb pids rdma misc\n");
        Assert.Equal(["memory", "pids", "cpu"], enable);
        Assert.Empty(missing);
        Assert.Equal("+memory +pids +cpu", CgroupV2Limiter.SubtreeControl(enable));

        (enable, missing) = CgroupV2Limiter.Controllers("cpu io\n");
        Assert.Equal(["memory", "pids"], missing);
        Assert.Equal(["cpu"], enable);
    }

    [Fact]
    public void Control_writes_cover_set_limits_only()
    {
        Assert.Equal(
            [("memory.max", "268435456"), ("memory.swap.max", "0"), ("pids.max", "512"), ("cpu.max", "150000 100000")],
            CgroupV2Limiter.ControlWrites(new ResourceLimits(256L * 1024 * 1024, 1.5, 512), cpu: true, swap: true));
        Assert.Equal(
            [("memory.max", "1048576"), ("pids.max", "8")],
            CgroupV2Limiter.ControlWrites(new ResourceLimits(1024 * 1024, 2, 8), cpu: false, swap: false));
        Assert.Empty(CgroupV2Limiter.ControlWrites(ResourceLimits.None, cpu: true, swap: true));
        // The kernel refuses quotas under 1 ms.
        Assert.Equal("1000 100000", CgroupV2Limiter.CpuMax(0.001));
    }

    [Fact]
    public void ExplainExit_reports_an_oom_kill_recorded_in_memory_events()
    {
        var cgroup = _dir.Path;
        var limits = new ResourceLimits(256L * 1024 * 1024, null, 64);
        var scope = new LimitScope("s", limits, new CgroupScopeBackend(version2: true, [cgroup], cgroup, cgroup, limits, NullLogger.Instance));
        File.WriteAllText(Path.Combine(cgroup, "memory.events"), "low 0\nhigh 0\nmax 12\noom 1\noom_kill 0\noom_group_kill 0\n");
        File.WriteAllText(Path.Combine(cgroup, "pids.events"), "max 0\n");

        Assert.Null(scope.ExplainExit(137));

        File.WriteAllText(Path.Combine(cgroup, "memory.events"), "low 0\nhigh 0\nmax 40\noom 2\noom_kill 1\noom_group_kill 0\n");
        Assert.Equal("the process was killed because it exceeded its memory limit of 256 MiB", scope.ExplainExit(137));
        Assert.StartsWith("a process of its tree was killed because the tree exceeded its memory limit of 256 MiB", scope.ExplainExit(1), StringComparison.Ordinal);
    }

    [Fact]
    public void The_join_wrapper_passes_the_procs_files_then_the_original_program()
    {
        var cgroup = _dir.Path;
        var limits = new ResourceLimits(null, null, 64);
        var scope = new LimitScope("s", limits, new CgroupScopeBackend(version2: true, [cgroup], cgroup, cgroup, limits, NullLogger.Instance));
        var spec = new LaunchSpec("python3", ["app.py", "--", "x y"], "/srv/app", new Dictionary<string, string> { ["A"] = "1" })
        {
            LogFile = "/var/log/app.log",
            InheritEnvironment = true,
        };

        var wrapped = scope.Apply(spec);

        Assert.Equal("/bin/sh", wrapped.FileName);
        Assert.Equal(["-c", Cgroups.JoinScript, "connect-limits", Path.Combine(cgroup, "cgroup.procs"), "--", "python3", "app.py", "--", "x y"], wrapped.Arguments);
        Assert.Equal(spec with { FileName = wrapped.FileName, Arguments = wrapped.Arguments }, wrapped);
    }
}
