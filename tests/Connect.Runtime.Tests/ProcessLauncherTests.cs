using System.Globalization;
using System.Net.Http;
using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

public sealed class ProcessLauncherTests : IDisposable
{
    private const string Python = "/usr/bin/python3";

    // Serves HTTP and keeps a grandchild (sleep) in the tree; prints the grandchild's pid.
    private const string ServerScript = """
        import http.server, os, signal, subprocess, sys
        port = int(sys.argv[1])
        if len(sys.argv) > 2 and sys.argv[2] == "ignore-term":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        child = subprocess.Popen(["sleep", "300"])
        print("grandchild", child.pid, flush=True)
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("hello from " + str(os.getpid())).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
        http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()
        """;

    private readonly TestDirectory _dir = new();

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Serves_http_and_StopAsync_ends_the_whole_tree()
    {
        var script = _dir.Write("server.py", ServerScript);
        var port = LoopbackPorts.GetFreePort();
        var logFile = _dir.Combine("logs", "out.log");
        var spec = new LaunchSpec(Python, [script, port.ToString(CultureInfo.InvariantCulture)], _dir.Path, new Dictionary<string, string>())
        {
            LogFile = logFile,
        };

        var handle = ProcessLauncher.Start(spec, NullLogger.Instance, TimeProvider.System);
        Assert.True(handle.Pid > 0);
        Assert.False(handle.HasExited);
        Assert.True(await LoopbackPorts.WaitUntilAcceptingAsync(port, TimeSpan.FromSeconds(20), handle.Exited, TimeProvider.System, default));

        using var http = new HttpClient();
        var body = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/"));
        Assert.Equal($"hello from {handle.Pid}", body);

        var grandchild = await GrandchildPidAsync(handle);
        Assert.True(IsAlive(grandchild));

        await handle.StopAsync(TimeSpan.FromSeconds(10));

        Assert.True(handle.HasExited);
        Assert.Equal(128 + 15, await handle.Exited);
        Assert.False(IsAlive(grandchild), $"grandchild {grandchild} survived StopAsync");
        Assert.Contains(handle.Log.Tail(100), l => l.StartsWith("grandchild ", StringComparison.Ordinal));
        Assert.Contains("grandchild", await File.ReadAllTextAsync(logFile));

        // Idempotent: stopping again, or disposing, is a no-op.
        await handle.StopAsync(TimeSpan.FromSeconds(1));
        await handle.DisposeAsync();
    }

    [Fact]
    public async Task A_process_ignoring_SIGTERM_is_killed_after_the_grace_period()
    {
        var script = _dir.Write("server.py", ServerScript);
        var port = LoopbackPorts.GetFreePort();
        var spec = new LaunchSpec(Python, [script, port.ToString(CultureInfo.InvariantCulture), "ignore-term"], _dir.Path, new Dictionary<string, string>());
        var handle = ProcessLauncher.Start(spec, NullLogger.Instance);
        Assert.True(await LoopbackPorts.WaitUntilAcceptingAsync(port, TimeSpan.FromSeconds(20), handle.Exited, TimeProvider.System, default));
        var grandchild = await GrandchildPidAsync(handle);

        var started = TimeProvider.System.GetTimestamp();
        await handle.StopAsync(TimeSpan.FromMilliseconds(500));
        var elapsed = TimeProvider.System.GetElapsedTime(started);

        Assert.Equal(128 + 9, await handle.Exited);
        Assert.InRange(elapsed, TimeSpan.FromMilliseconds(400), TimeSpan.FromSeconds(8));
        Assert.False(IsAlive(grandchild));
    }

    [Fact]
    public async Task Exited_reports_the_exit_code_and_orphans_are_cleaned_up_on_dispose()
    {
        // The leader exits at once, leaving a grandchild behind in its process group.
        var spec = new LaunchSpec(
            Python,
            ["-c", "import subprocess, sys; p = subprocess.Popen(['sleep', '300']); print('grandchild', p.pid, flush=True); sys.exit(3)"],
            _dir.Path,
            new Dictionary<string, string>());
        var handle = ProcessLauncher.Start(spec, NullLogger.Instance);
        Assert.Equal(3, await handle.Exited.WaitAsync(TimeSpan.FromSeconds(20)));
        var grandchild = await GrandchildPidAsync(handle);
        Assert.True(IsAlive(grandchild));

        await handle.DisposeAsync();
        Assert.False(IsAlive(grandchild));
    }

    [Fact]
    public async Task Child_gets_only_the_base_environment_plus_the_spec()
    {
        Environment.SetEnvironmentVariable("CONNECT_TEST_SERVER_SECRET", "hunter2");
        var lines = new List<string>();
        var spec = new LaunchSpec("env", [], _dir.Path, new Dictionary<string, string> { ["CONNECT_CONTENT_GUID"] = "abc", ["LANG"] = "en_US.UTF-8" });
        var result = await ProcessRunner.RunAsync(spec, lines.Add, TimeSpan.FromSeconds(20), default);

        Assert.Equal(new ProcessResult(0, false), result);
        var names = lines.Select(l => l[..l.IndexOf('=', StringComparison.Ordinal)]).Order(StringComparer.Ordinal).ToArray();
        Assert.Equal(["CONNECT_CONTENT_GUID", "HOME", "LANG", "PATH", "TMPDIR"], names);
        Assert.Contains("LANG=en_US.UTF-8", lines);
        Assert.DoesNotContain(lines, l => l.Contains("hunter2", StringComparison.Ordinal));

        var inherited = new List<string>();
        await ProcessRunner.RunAsync(spec with { InheritEnvironment = true }, inherited.Add, TimeSpan.FromSeconds(20), default);
        Assert.Contains("CONNECT_TEST_SERVER_SECRET=hunter2", inherited);
        Assert.Contains("CONNECT_CONTENT_GUID=abc", inherited);
    }

    [Fact]
    public void Missing_executable_or_directory_throws()
    {
        var empty = new Dictionary<string, string>();
        Assert.Throws<FileNotFoundException>(() =>
            ProcessLauncher.Start(new LaunchSpec("/nonexistent/python", [], _dir.Path, empty), NullLogger.Instance));
        Assert.Throws<FileNotFoundException>(() =>
            ProcessLauncher.Start(new LaunchSpec("definitely-not-a-command", [], _dir.Path, empty), NullLogger.Instance));
        Assert.Throws<DirectoryNotFoundException>(() =>
            ProcessLauncher.Start(new LaunchSpec(Python, [], _dir.Combine("missing"), empty), NullLogger.Instance));
    }

    internal static async Task<int> GrandchildPidAsync(ProcessHandle handle)
    {
        for (var i = 0; i < 200; i++)
        {
            var line = handle.Log.Tail(100).FirstOrDefault(l => l.StartsWith("grandchild ", StringComparison.Ordinal));
            if (line is not null)
            {
                return int.Parse(line["grandchild ".Length..], CultureInfo.InvariantCulture);
            }

            await Task.Delay(50);
        }

        throw new TimeoutException("The process never reported its grandchild.");
    }

    /// <summary>Alive = has a /proc entry that is not a zombie (orphans may linger as zombies of a non-reaping PID 1).</summary>
    internal static bool IsAlive(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var state = stat[(stat.LastIndexOf(')') + 2)..][0];
            return state is not ('Z' or 'X');
        }
        catch (IOException)
        {
            return false;
        }
    }
}
