using System.Net;
using System.Net.Sockets;

namespace Connect.Runtime.Processes;

public static class LoopbackPorts
{
    private static readonly TimeSpan FirstPollInterval = TimeSpan.FromMilliseconds(2);
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan AttemptTimeout = TimeSpan.FromSeconds(1);

    /// <summary>A loopback TCP port that was free a moment ago (the OS picks it; another process could still take it).</summary>
    public static int GetFreePort()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)listener.LocalEndPoint!).Port;
    }

    /// <summary>
    /// Polls a TCP connect to 127.0.0.1:<paramref name="port"/>. True once it is accepted; false when
    /// <paramref name="timeout"/> passes or <paramref name="processExited"/> completes first.
    /// </summary>
    public static Task<bool> WaitUntilAcceptingAsync(
        int port, TimeSpan timeout, Task processExited, TimeProvider time, CancellationToken ct) =>
        WaitUntilAcceptingAsync(ListenAddress.Tcp(port), timeout, processExited, time, ct);

    /// <summary>As above, for a TCP port or a Unix socket.</summary>
    public static async Task<bool> WaitUntilAcceptingAsync(
        ListenAddress address, TimeSpan timeout, Task processExited, TimeProvider time, CancellationToken ct)
    {
        ArgumentNullException.ThrowIfNull(processExited);
        ArgumentNullException.ThrowIfNull(time);
        var started = time.GetTimestamp();
        // Most apps listen within a few hundred ms: poll often at first (2, 4, 8, 16 ms), then every 10 ms (a refused connect costs microseconds).
        var interval = FirstPollInterval;
        while (true)
        {
            ct.ThrowIfCancellationRequested();
            if (processExited.IsCompleted)
            {
                return false;
            }

            if (await TryConnectAsync(address, ct).ConfigureAwait(false))
            {
                return true;
            }

            // The process may have bound the port and died in between; it is not serving anyone then.
            if (processExited.IsCompleted)
            {
                return false;
            }

            var remaining = timeout - time.GetElapsedTime(started);
            if (remaining <= TimeSpan.Zero)
            {
                return false;
            }

            var delay = Task.Delay(remaining < interval ? remaining : interval, time, ct);
            interval = interval * 2 < PollInterval ? interval * 2 : PollInterval;
            await Task.WhenAny(delay, processExited).ConfigureAwait(false);
            ct.ThrowIfCancellationRequested();
        }
    }

    private static async Task<bool> TryConnectAsync(ListenAddress address, CancellationToken ct)
    {
        using var socket = address.SocketPath is null
            ? new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        EndPoint endpoint = address.SocketPath is { } path ? new UnixDomainSocketEndPoint(path) : new IPEndPoint(IPAddress.Loopback, address.Port);
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
        // A listener with a full backlog leaves a connect hanging; bound each attempt so the overall timeout holds.
        attempt.CancelAfter(AttemptTimeout);
        try
        {
            await socket.ConnectAsync(endpoint, attempt.Token).ConfigureAwait(false);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return false;
        }
    }
}
