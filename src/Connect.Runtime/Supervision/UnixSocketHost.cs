using System.Net.Sockets;

namespace Connect.Runtime.Supervision;

/// <summary>
/// Forwarding to a process on a Unix socket: the destination URL names the process (<c>http://{id:N}.connect-process</c>)
/// and the shared handler's connect callback maps that name to the socket, so one pooled invoker serves every process.
/// </summary>
public static class UnixSocketHost
{
    public const string Suffix = ".connect-process";

    /// <summary>For SocketsHttpHandler.ConnectCallback: a Unix socket for process hosts, plain TCP for anything else.</summary>
    public static async ValueTask<Stream> ConnectAsync(ProcessSupervisor supervisor, string host, int port, CancellationToken ct)
    {
        if (host.EndsWith(Suffix, StringComparison.Ordinal))
        {
            if (!Guid.TryParseExact(host[..^Suffix.Length], "N", out var id) || !supervisor.TryGet(id, out var process) || process.Listen.SocketPath is not { } path)
            {
                throw new SocketException((int)SocketError.ConnectionRefused);
            }
            // Only ever a socket, never a link: this connect runs as root.
            if (!Sandbox.ContentOutput.IsSocket(path))
            {
                throw new SocketException((int)SocketError.ConnectionRefused);
            }
            var unix = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try
            {
                await unix.ConnectAsync(new UnixDomainSocketEndPoint(path), ct).ConfigureAwait(false);
                return new NetworkStream(unix, ownsSocket: true);
            }
            catch
            {
                unix.Dispose();
                throw;
            }
        }
        var tcp = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await tcp.ConnectAsync(host, port, ct).ConfigureAwait(false);
            return new NetworkStream(tcp, ownsSocket: true);
        }
        catch
        {
            tcp.Dispose();
            throw;
        }
    }
}
