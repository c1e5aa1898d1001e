using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Processes;

/// <summary>Outcome of a run: the exit code (128+N if killed by signal N) and whether the timeout killed it.</summary>
public sealed record ProcessResult(int ExitCode, bool TimedOut);

/// <summary>Runs a finite command (venv, pip, nbconvert) to completion, streaming its output.</summary>
public static class ProcessRunner
{
    private static readonly TimeSpan StopGrace = TimeSpan.FromSeconds(3);
    private static readonly TimeSpan DrainAfterExit = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Runs <paramref name="spec"/>, passing each stdout/stderr line to <paramref name="onOutputLine"/>. On timeout the
    /// tree is killed and the result says TimedOut; on cancellation the tree is killed and the cancellation is thrown.
    /// Every line has been delivered when the task completes.
    /// </summary>
    public static async Task<ProcessResult> RunAsync(
        LaunchSpec spec, Action<string> onOutputLine, TimeSpan timeout, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(onOutputLine);
        ct.ThrowIfCancellationRequested();
        var time = TimeProvider.System;
        var handle = ProcessLauncher.StartCore(spec, NullLogger.Instance, time, onOutputLine);
        await using (handle.ConfigureAwait(false))
        {
            using var timeoutCts = new CancellationTokenSource(timeout, time);
            using var linked = CancellationTokenSource.CreateLinkedTokenSource(ct, timeoutCts.Token);
            int exitCode;
            try
            {
                exitCode = await handle.Exited.WaitAsync(linked.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                if (ct.IsCancellationRequested || !handle.Exited.IsCompleted)
                {
                    await handle.StopAsync(StopGrace).ConfigureAwait(false);
                    ct.ThrowIfCancellationRequested();
                    return new ProcessResult(await handle.Exited.ConfigureAwait(false), TimedOut: true);
                }

                // The timeout fired just as the process finished on its own: that is a normal exit.
                exitCode = await handle.Exited.ConfigureAwait(false);
            }

            // Output can trail the exit a little; a descendant still holding the pipe is killed by the dispose below.
            try
            {
                await handle.OutputCompleted.WaitAsync(DrainAfterExit, time, ct).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // Dispose kills whatever still holds the pipes open and then drains.
            }

            return new ProcessResult(exitCode, TimedOut: false);
        }
    }
}
