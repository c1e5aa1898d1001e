using System.Collections.Concurrent;

namespace Connect.Runtime.Processes;

/// <summary>
/// The one thread that forks every child of this server. The kernel ties PR_SET_PDEATHSIG (bubblewrap's
/// --die-with-parent) to the <em>thread</em> that forked the child, not to the process: a child forked from a
/// thread-pool thread is SIGKILLed when .NET retires that idle thread (about 20 s after a burst). This thread
/// lives as long as the server, so children die with the server and never before.
/// </summary>
internal static class LauncherThread
{
    private static readonly BlockingCollection<Action> Work = new();
    private static readonly Lazy<Thread> Thread = new(StartThread, LazyThreadSafetyMode.ExecutionAndPublication);

    /// <summary>Runs <paramref name="start"/> (a fork) on the launcher thread and returns when it has.</summary>
    public static void Run(Action start)
    {
        var thread = Thread.Value;
        if (System.Threading.Thread.CurrentThread == thread)
        {
            start();
            return;
        }
        Exception? failure = null;
        using var done = new ManualResetEventSlim();
        Work.Add(() =>
        {
            try
            {
                start();
            }
            catch (Exception e)
            {
                failure = e;
            }
            finally
            {
                done.Set();
            }
        });
        done.Wait();
        if (failure is not null)
        {
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(failure).Throw();
        }
    }

    /// <summary>The managed id of the launcher thread (for tests that check forks happen there).</summary>
    public static int ManagedThreadId => Thread.Value.ManagedThreadId;

    private static Thread StartThread()
    {
        var thread = new Thread(() =>
        {
            foreach (var work in Work.GetConsumingEnumerable())
            {
                work();
            }
        })
        {
            IsBackground = true,
            Name = "connect-launcher",
        };
        thread.Start();
        return thread;
    }
}
