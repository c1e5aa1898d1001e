using System.Globalization;

namespace Connect.Runtime.Processes;

/// <summary>
/// Where a content process listens: a Unix socket (the default under the sandbox: only the front end, which sees the
/// socket's directory, can connect) or a loopback TCP port (frameworks that cannot bind a socket file).
/// </summary>
public sealed record ListenAddress
{
    private ListenAddress(int port, string? socketPath)
    {
        Port = port;
        SocketPath = socketPath;
    }

    public int Port { get; }

    /// <summary>The socket's path on the host (the front end connects here).</summary>
    public string? SocketPath { get; }

    public static ListenAddress Tcp(int port)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(port);
        return new(port, null);
    }

    public static ListenAddress Unix(string socketPath)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(socketPath);
        // sun_path holds 108 bytes with its terminating NUL.
        if (System.Text.Encoding.UTF8.GetByteCount(socketPath) > 107)
        {
            throw new ArgumentException($"Unix socket path '{socketPath}' is longer than 107 bytes; use a shorter data directory.", nameof(socketPath));
        }
        return new(0, socketPath);
    }

    public override string ToString() => SocketPath is { } s ? "unix:" + s : "127.0.0.1:" + Port.ToString(CultureInfo.InvariantCulture);
}
