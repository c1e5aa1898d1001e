using System.Threading.Channels;
using Connect.Core.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Connect.Data.Postgres;

/// <summary>
/// The cluster's change broadcast over PostgreSQL LISTEN/NOTIFY: a change published on one node reaches every other
/// node's caches in milliseconds instead of when a cache entry expires. Sending never blocks the publisher (a queue
/// drained by one loop); a lost database connection is re-established and, since notices sent meanwhile are lost,
/// every cache is told to forget everything once it is back.
/// </summary>
public sealed partial class PostgresChangeFeed : BackgroundService, IChangeBroadcast
{
    public const string Channel = "connect_changes";

    private readonly NpgsqlDataSource _dataSource;
    private readonly ContentChanges _changes;
    private readonly ILogger<PostgresChangeFeed> _logger;
    private readonly string _origin = Guid.NewGuid().ToString("N")[..12];
    private readonly Channel<ChangeNotice> _outgoing = System.Threading.Channels.Channel.CreateBounded<ChangeNotice>(
        new BoundedChannelOptions(10_000) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
    private readonly TaskCompletionSource _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PostgresChangeFeed(string connectionString, ContentChanges changes, ILogger<PostgresChangeFeed> logger)
    {
        // Its own small pool: LISTEN holds a connection for good, and sends must not wait behind catalog queries.
        var builder = new NpgsqlConnectionStringBuilder(connectionString) { MaxPoolSize = 3, KeepAlive = 5 };
        _dataSource = NpgsqlDataSource.Create(builder.ConnectionString);
        _changes = changes;
        _logger = logger;
        changes.UseBroadcast(this);
    }

    /// <summary>Completes once this node listens (tests wait on it before publishing elsewhere).</summary>
    public Task Listening => _listening.Task;

    public void Send(ChangeNotice notice) => _outgoing.Writer.TryWrite(notice);

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(ListenAsync(stoppingToken), SendAsync(stoppingToken));

    private async Task ListenAsync(CancellationToken ct)
    {
        var first = true;
        while (!ct.IsCancellationRequested)
        {
            try
            {
                await using var connection = await _dataSource.OpenConnectionAsync(ct);
                connection.Notification += (_, e) => OnNotification(e.Payload);
                await using (var listen = new NpgsqlCommand($"LISTEN {Channel}", connection))
                {
                    await listen.ExecuteNonQueryAsync(ct);
                }
                if (!first)
                {
                    // Notices sent while this node was not listening are lost: forget every cached item and key.
                    LogReconnected(_logger);
                    _changes.Receive(ChangeNotice.Keys);
                    _changes.Receive(ChangeNotice.ForContent(Guid.Empty));
                }
                first = false;
                _listening.TrySetResult();
                while (!ct.IsCancellationRequested)
                {
                    await connection.WaitAsync(ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
                return;
            }
            catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException or IOException or InvalidOperationException)
            {
                LogListenFailed(_logger, e.Message);
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), ct);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
            }
        }
    }

    private void OnNotification(string payload)
    {
        var bar = payload.IndexOf('|', StringComparison.Ordinal);
        if (bar <= 0 || payload.AsSpan(0, bar).SequenceEqual(_origin))
        {
            return;
        }
        if (ChangeNotice.Parse(payload[(bar + 1)..]) is { } notice)
        {
            _changes.Receive(notice);
        }
    }

    private async Task SendAsync(CancellationToken ct)
    {
        try
        {
            await foreach (var notice in _outgoing.Reader.ReadAllAsync(ct))
            {
                try
                {
                    await using var command = _dataSource.CreateCommand("SELECT pg_notify($1, $2)");
                    command.Parameters.Add(new NpgsqlParameter { Value = Channel });
                    command.Parameters.Add(new NpgsqlParameter { Value = _origin + "|" + notice });
                    await command.ExecuteNonQueryAsync(ct);
                }
                catch (Exception e) when (e is NpgsqlException or System.Net.Sockets.SocketException or IOException or InvalidOperationException)
                {
                    // Other nodes' caches expire on their own (seconds); the catalog stays right.
                    LogSendFailed(_logger, notice.ToString(), e.Message);
                }
            }
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested)
        {
        }
    }

    public override void Dispose()
    {
        base.Dispose();
        _dataSource.Dispose();
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Listening for cluster changes failed ({Error}); retrying")]
    private static partial void LogListenFailed(ILogger logger, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Listening for cluster changes again; caches were cleared")]
    private static partial void LogReconnected(ILogger logger);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Broadcasting change {Notice} failed: {Error}")]
    private static partial void LogSendFailed(ILogger logger, string notice, string error);
}
