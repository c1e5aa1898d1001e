using Connect.Runtime.Processes;

namespace Connect.Runtime.Tests;

public sealed class ProcessRunnerTests : IDisposable
{
    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Streams_stdout_and_stderr_lines_and_returns_the_exit_code()
    {
        var lines = new List<string>();
        var spec = new LaunchSpec(
            "/usr/bin/python3",
            ["-c", "import sys\nfor i in range(3): print('out', i)\nprint('err', file=sys.stderr)\nsys.exit(7)"],
            _dir.Path,
            new Dictionary<string, string>());

        var result = await ProcessRunner.RunAsync(spec, l => { lock (lines) { lines.Add(l); } }, TimeSpan.FromSeconds(20), default);

        Assert.Equal(new ProcessResult(7, false), result);
        Assert.Equal(["err", "out 0", "out 1", "out 2"], lines.Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Timeout_kills_the_tree()
    {
        var lines = new List<string>();
        var spec = new LaunchSpec(
            "/usr/bin/python3",
            ["-c", "import subprocess, time; p = subprocess.Popen(['sleep', '300']); print('grandchild', p.pid, flush=True); time.sleep(300)"],
            _dir.Path,
            new Dictionary<string, string>());

        var started = TimeProvider.System.GetTimestamp();
        var result = await ProcessRunner.RunAsync(spec, l => { lock (lines) { lines.Add(l); } }, TimeSpan.FromSeconds(1.5), default);

        Assert.True(result.TimedOut);
        Assert.NotEqual(0, result.ExitCode);
        Assert.InRange(TimeProvider.System.GetElapsedTime(started), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10));
        var grandchild = int.Parse(lines.Single(l => l.StartsWith("grandchild", StringComparison.Ordinal))["grandchild ".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.False(ProcessLauncherTests.IsAlive(grandchild));
    }

    [Fact]
    public async Task Cancellation_kills_the_process_and_throws()
    {
        var lines = new List<string>();
        var spec = new LaunchSpec("/usr/bin/python3", ["-c", "import os, time; print(os.getpid(), flush=True); time.sleep(300)"], _dir.Path, new Dictionary<string, string>());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(1));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            ProcessRunner.RunAsync(spec, l => { lock (lines) { lines.Add(l); } }, TimeSpan.FromMinutes(5), cts.Token));

        Assert.False(ProcessLauncherTests.IsAlive(int.Parse(lines.Single(), System.Globalization.CultureInfo.InvariantCulture)));
    }
}
