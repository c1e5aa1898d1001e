using System.Collections.Concurrent;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Microsoft.Extensions.Options;

namespace Connect.Data.Security;

/// <summary>
/// This node's memory of validated API keys (hash → holder), so that a busy key costs no catalog read per request.
/// The revocation delay is bounded: an entry lives at most <see cref="ConnectOptions.ApiKeyCacheSeconds"/>, and
/// whatever revokes a key or changes a user calls <see cref="InvalidateAll"/>, which takes effect at once on this node
/// and, in a cluster, on the others as soon as the broadcast reaches them (milliseconds).
/// Unknown keys are never remembered, so a key created a moment ago (by the API or the admin command) works at once.
/// </summary>
public sealed class ApiKeyCache
{
    private readonly ICatalogStore store;
    private readonly TimeProvider time;
    private readonly ContentChanges? _changes;

    /// <param name="changes">carries invalidations to and from the other nodes of a cluster (and this node's)</param>
    public ApiKeyCache(ICatalogStore store, TimeProvider time, IOptions<ConnectOptions> options, ContentChanges? changes = null)
    {
        this.store = store;
        this.time = time;
        _lifetime = TimeSpan.FromSeconds(options.Value.ApiKeyCacheSeconds);
        _changes = changes;
        if (changes is not null)
        {
            changes.KeysChanged += Clear;
        }
    }

    private sealed record Entry(ApiKeyHolder Holder, DateTimeOffset Expires);

    private readonly TimeSpan _lifetime;
    // Only keys that exist are held, and deleting keys empties the cache, so it never outgrows the key table.
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly Lock _gate = new();
    private long _generation;

    /// <summary>The holder of the key with this hash, from memory while fresh, else from the catalog; null when unknown.</summary>
    public async ValueTask<ApiKeyHolder?> FindAsync(string keyHash, CancellationToken ct = default)
    {
        if (_lifetime <= TimeSpan.Zero)
        {
            return await store.FindUserByKeyHashAsync(keyHash, ct);
        }
        // Taken before the read, so that the entry expires no later than the lifetime after what the catalog said.
        var now = time.GetUtcNow();
        if (_entries.TryGetValue(keyHash, out var entry) && now < entry.Expires)
        {
            return entry.Holder;
        }
        long generation;
        lock (_gate)
        {
            generation = _generation;
        }
        var holder = await store.FindUserByKeyHashAsync(keyHash, ct);
        lock (_gate)
        {
            // A revocation that ran while the catalog was read may have been missed by that read: keep nothing then.
            // Locked users are not kept either: their refusal is cheap to repeat, and an unlock must work at once.
            if (holder is { User.Locked: false } && generation == _generation)
            {
                _entries[keyHash] = new Entry(holder, now + _lifetime);
            }
            else
            {
                _entries.TryRemove(keyHash, out _);
            }
        }
        return holder;
    }

    /// <summary>
    /// Forgets every key: called after a key is deleted (by its user, or a content process's when the process ends)
    /// or a user is locked or changed. Coarse on purpose — the next request of each key pays one catalog read.
    /// </summary>
    public void InvalidateAll()
    {
        if (_changes is not null)
        {
            // Clears this cache through the subscription, and every other node's through the broadcast.
            _changes.PublishKeys();
            return;
        }
        Clear();
    }

    private void Clear()
    {
        lock (_gate)
        {
            _generation++;
            _entries.Clear();
        }
    }
}
