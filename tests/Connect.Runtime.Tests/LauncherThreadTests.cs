using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

/// <summary>
/// A child with a parent-death signal (bubblewrap's --die-with-parent) is tied to the thread that forked it. Children
/// must be forked from the launcher thread, which lives as long as the server, not from the caller's thread.
/// </summary>
public sealed class LauncherThreadTests
{
    [Fact]
    public async Task A_child_with_a_parent_death_signal_outlives_the_thread_that_asked_for_it()
    {
        var setpriv = ProcessLauncher.ResolveOnPath("setpriv", "/usr/bin:/bin");
        Assert.NotNull(setpriv);
        ProcessHandle? handle = null;
        // A short-lived thread, like a thread-pool thread the runtime retires after a burst.
        var thread = new Thread(() =>
        {
            handle = ProcessLauncher.Start(new LaunchSpec(setpriv, ["--pdeathsig", "KILL", "--", "sleep", "30"], "/", new Dictionary<string, string>()), NullLogger.Instance);
            // Long enough for setpriv to have set its parent-death signal and exec'd sleep before this thread ends.
            Thread.Sleep(500);
        });
        thread.Start();
        thread.Join();
        Assert.NotNull(handle);
        await using (handle)
        {
            // Before the launcher thread, the kernel SIGKILLed the child as soon as its forking thread ended.
            var exited = await Task.WhenAny(handle.Exited, Task.Delay(TimeSpan.FromSeconds(1.5)));
            Assert.False(exited == handle.Exited, $"the child died with the thread that started it (exit {(handle.HasExited ? await handle.Exited : 0)})");
            Assert.True(Directory.Exists($"/proc/{handle.Pid}"));
        }
    }

    [Fact]
    public void Forks_happen_on_one_long_lived_thread()
    {
        var seen = new HashSet<int>();
        for (var i = 0; i < 3; i++)
        {
            var t = new Thread(() => LauncherThread.Run(() => { lock (seen) { seen.Add(Environment.CurrentManagedThreadId); } }));
            t.Start();
            t.Join();
        }
        Assert.Equal(LauncherThread.ManagedThreadId, Assert.Single(seen));
    }
}
