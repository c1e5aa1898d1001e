using System.Collections.Concurrent;
using Connect.Abstractions;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data;

namespace Connect.Proxy;

/// <summary>
/// Per-node caches for the front end, so a proxied request costs no catalog read and no grain call in the
/// steady state: content items (short lifetime, dropped at once on a change made on any node of the cluster) and each
/// item's known processes with its scaling policy.
/// </summary>
public sealed class ContentCatalogCache
{
    private static readonly TimeSpan ItemLifetime = TimeSpan.FromSeconds(2);
    private readonly ConcurrentDictionary<Guid, (ContentItem? Item, DateTimeOffset Expires)> _items = new();
    private readonly ConcurrentDictionary<Guid, RouteEntry> _routes = new();
    private readonly ICatalogStore _store;
    private readonly TimeProvider _time;

    public ContentCatalogCache(ICatalogStore store, TimeProvider time, ContentChanges changes)
    {
        _store = store;
        _time = time;
        changes.Changed += Forget;
    }

    public async ValueTask<ContentItem?> GetItemAsync(Guid guid, CancellationToken ct)
    {
        var now = _time.GetUtcNow();
        if (_items.TryGetValue(guid, out var cached) && cached.Expires > now)
        {
            return cached.Item;
        }
        var item = await _store.GetContentAsync(guid, ct);
        _items[guid] = (item, now + ItemLifetime);
        return item;
    }

    public RouteEntry? GetRoute(Guid guid) => _routes.TryGetValue(guid, out var r) ? r : null;

    public void SetRoute(Guid guid, ProcessRoute route)
    {
        if (route.Policy is { } policy)
        {
            _routes[guid] = new RouteEntry(route.All, policy);
        }
    }

    public void ForgetProcess(Guid guid, Guid processId)
    {
        if (_routes.TryGetValue(guid, out var r))
        {
            _routes.TryUpdate(guid, r with { Processes = r.Processes.Where(p => p.ProcessId != processId).ToArray() }, r);
        }
    }

    /// <summary>Drops what is cached of one item; <see cref="Guid.Empty"/> drops everything (after missed cluster notices).</summary>
    public void Forget(Guid guid)
    {
        if (guid == Guid.Empty)
        {
            _items.Clear();
            _routes.Clear();
            return;
        }
        _items.TryRemove(guid, out _);
        _routes.TryRemove(guid, out _);
    }

    public sealed record RouteEntry(IReadOnlyList<ProcessEndpoint> Processes, ScalingPolicy Policy);
}
