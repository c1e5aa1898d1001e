using System.Net;
using System.Net.Sockets;
using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace Connect.Runtime.Tests;

public sealed class LoopbackPortsTests
{
    [Fact]
    public async Task True_once_something_listens()
    {
        var port = LoopbackPorts.GetFreePort();
        var never = new TaskCompletionSource().Task;
        var waiting = LoopbackPorts.WaitUntilAcceptingAsync(port, TimeSpan.FromSeconds(20), never, TimeProvider.System, default);
        await Task.Delay(200);
        Assert.False(waiting.IsCompleted);

        using var listener = new TcpListener(IPAddress.Loopback, port);
        listener.Start();
        Assert.True(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task False_on_timeout()
    {
        var port = LoopbackPorts.GetFreePort();
        var started = TimeProvider.System.GetTimestamp();
        var result = await LoopbackPorts.WaitUntilAcceptingAsync(port, TimeSpan.FromMilliseconds(300), new TaskCompletionSource().Task, TimeProvider.System, default);
        Assert.False(result);
        Assert.InRange(TimeProvider.System.GetElapsedTime(started), TimeSpan.FromMilliseconds(250), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task False_on_timeout_with_a_fake_clock()
    {
        var time = new FakeTimeProvider();
        var port = LoopbackPorts.GetFreePort();
        var waiting = LoopbackPorts.WaitUntilAcceptingAsync(port, TimeSpan.FromSeconds(60), new TaskCompletionSource().Task, time, default);
        for (var i = 0; i < 200 && !waiting.IsCompleted; i++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(5);
        }

        Assert.False(await waiting.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task False_when_the_process_exits_first()
    {
        var port = LoopbackPorts.GetFreePort();
        await using var handle = ProcessLauncher.Start(
            new LaunchSpec("/usr/bin/python3", ["-c", "import time; time.sleep(0.5)"], Path.GetTempPath(), new Dictionary<string, string>()),
            NullLogger.Instance);
        var started = TimeProvider.System.GetTimestamp();
        var result = await LoopbackPorts.WaitUntilAcceptingAsync(port, TimeSpan.FromSeconds(60), handle.Exited, TimeProvider.System, default);
        Assert.False(result);
        Assert.True(handle.HasExited);
        Assert.True(TimeProvider.System.GetElapsedTime(started) < TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task Cancellation_throws()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => LoopbackPorts.WaitUntilAcceptingAsync(
            LoopbackPorts.GetFreePort(), TimeSpan.FromSeconds(60), new TaskCompletionSource().Task, TimeProvider.System, cts.Token));
    }
}
