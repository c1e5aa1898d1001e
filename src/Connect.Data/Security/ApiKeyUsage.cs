using Connect.Core.Hosting;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Connect.Data.Security;

/// <summary>
/// Last-used times of API keys, gathered in memory and written to the catalog in one batch by
/// <see cref="ApiKeyUsageFlusher"/>, instead of a catalog write on every request that carries a key.
/// </summary>
public sealed partial class ApiKeyUsage(ICatalogStore store, TimeProvider time, ILogger<ApiKeyUsage> logger)
{
    private readonly Lock _gate = new();
    private Dictionary<string, DateTimeOffset> _pending = new(StringComparer.Ordinal);

    /// <summary>Notes that the key with this hash was used now.</summary>
    public void Record(string keyHash)
    {
        var now = time.GetUtcNow();
        lock (_gate)
        {
            if (!_pending.TryGetValue(keyHash, out var previous) || previous < now)
            {
                _pending[keyHash] = now;
            }
        }
    }

    /// <summary>Writes what was recorded since the last flush. A failed write is kept for the next flush, not lost.</summary>
    public async Task FlushAsync(CancellationToken ct = default)
    {
        Dictionary<string, DateTimeOffset> batch;
        lock (_gate)
        {
            if (_pending.Count == 0)
            {
                return;
            }
            batch = _pending;
            _pending = new(StringComparer.Ordinal);
        }
        try
        {
            await store.RecordApiKeysUsedAsync(batch, ct);
        }
        catch (Exception e)
        {
            lock (_gate)
            {
                foreach (var (hash, used) in batch)
                {
                    if (!_pending.TryGetValue(hash, out var newer) || newer < used)
                    {
                        _pending[hash] = used;
                    }
                }
            }
            if (e is OperationCanceledException)
            {
                throw;
            }
            LogFlushFailed(logger, e, batch.Count);
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not record the last use of {Count} API keys; retrying at the next flush")]
    private static partial void LogFlushFailed(ILogger logger, Exception e, int count);
}

/// <summary>
/// Flushes <see cref="ApiKeyUsage"/> every <see cref="ConnectOptions.ApiKeyLastUsedFlushSeconds"/>, and once more on a
/// graceful shutdown so that the last interval's uses are not lost.
/// </summary>
public sealed class ApiKeyUsageFlusher(ApiKeyUsage usage, TimeProvider time, IOptions<ConnectOptions> options) : BackgroundService
{
    private PeriodicTimer? _timer;

    public override Task StartAsync(CancellationToken cancellationToken)
    {
        // Made here, not in ExecuteAsync (which .NET runs on a pool thread): the first interval counts from the start.
        _timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.ApiKeyLastUsedFlushSeconds), time);
        return base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var timer = _timer!;
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                // FlushAsync logs and keeps a failed batch; only cancellation escapes, and that ends the loop.
                await usage.FlushAsync(stoppingToken);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // A forced stop (cancelled token) skips the write rather than delay the shutdown it was asked to cut short.
        if (!cancellationToken.IsCancellationRequested)
        {
            await usage.FlushAsync(cancellationToken);
        }
    }

    public override void Dispose()
    {
        _timer?.Dispose();
        base.Dispose();
    }
}
