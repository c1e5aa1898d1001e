using System.Collections.Concurrent;
using System.Reflection;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data.Security;
using Connect.Data.Sqlite;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace Connect.Data.Tests;

/// <summary>Forwards to a real store and counts (and signals) the calls made to it.</summary>
public class ObservedStore : DispatchProxy
{
    private ICatalogStore _inner = null!;
    public ConcurrentDictionary<string, int> Calls { get; } = new();
    public event Action<string>? Called;

    public static (ICatalogStore Store, ObservedStore Observer) Wrap(ICatalogStore inner)
    {
        var proxy = Create<ICatalogStore, ObservedStore>();
        var observer = (ObservedStore)(object)proxy;
        observer._inner = inner;
        return (proxy, observer);
    }

    public int Count(string method) => Calls.GetValueOrDefault(method);

    protected override object? Invoke(MethodInfo? targetMethod, object?[]? args)
    {
        var result = targetMethod!.Invoke(_inner, args);
        Calls.AddOrUpdate(targetMethod.Name, 1, (_, n) => n + 1);
        if (result is Task task)
        {
            task.ContinueWith(_ => Called?.Invoke(targetMethod.Name), TaskScheduler.Default);
        }
        return result;
    }
}

public sealed class ApiKeyCacheTests : IAsyncLifetime
{
    private readonly string _root = Directory.CreateTempSubdirectory("connect-keycache-tests-").FullName;
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));
    private SqliteCatalogStore _catalog = null!;
    private ICatalogStore _store = null!;
    private ObservedStore _observer = null!;
    private UserInfo _alice = null!;

    public async Task InitializeAsync()
    {
        _catalog = new SqliteCatalogStore(Path.Combine(_root, "c.db"));
        await _catalog.MigrateAsync();
        (_store, _observer) = ObservedStore.Wrap(_catalog);
        _alice = await _catalog.CreateUserAsync(new NewUser("alice", UserRoles.Publisher, _time.GetUtcNow()));
    }

    private ApiKeyCache Cache(int seconds = 10) =>
        new(_store, _time, Options.Create(new ConnectOptions { ApiKeyCacheSeconds = seconds }));

    private async Task<(string Hash, ApiKeyInfo Key)> KeyAsync(string name = "k")
    {
        var hash = ApiKeys.Hash(ApiKeys.Generate());
        return (hash, await _catalog.CreateApiKeyAsync(_alice.Guid, name, hash));
    }

    private int Reads => _observer.Count(nameof(ICatalogStore.FindUserByKeyHashAsync));

    [Fact]
    public async Task A_valid_key_is_read_once_and_served_from_memory_until_the_configured_time_has_passed()
    {
        var cache = Cache(seconds: 10);
        var (hash, key) = await KeyAsync();

        Assert.Equal(_alice, (await cache.FindAsync(hash))?.User);
        _time.Advance(TimeSpan.FromSeconds(9.9));
        Assert.Equal(_alice, (await cache.FindAsync(hash))?.User);
        Assert.Equal(1, Reads);

        // Deleted behind the cache's back (another node): still trusted until the entry expires, and not a moment longer.
        await _catalog.DeleteApiKeyAsync(_alice.Guid, key.Id);
        Assert.NotNull(await cache.FindAsync(hash));
        _time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.Null(await cache.FindAsync(hash));
        Assert.Equal(2, Reads);
    }

    [Fact]
    public async Task Deleting_a_key_on_this_node_and_invalidating_refuses_it_at_once()
    {
        var cache = Cache();
        var (hash, key) = await KeyAsync();
        var (other, _) = await KeyAsync("other");
        Assert.NotNull(await cache.FindAsync(hash));
        Assert.NotNull(await cache.FindAsync(other));

        await _catalog.DeleteApiKeyAsync(_alice.Guid, key.Id);
        cache.InvalidateAll();

        Assert.Null(await cache.FindAsync(hash));
        Assert.NotNull(await cache.FindAsync(other));
    }

    [Fact]
    public async Task Locking_a_user_and_invalidating_shows_the_lock_at_once_and_an_unlock_is_not_delayed_either()
    {
        var cache = Cache();
        var (hash, _) = await KeyAsync();
        Assert.False((await cache.FindAsync(hash))!.User.Locked);

        await _catalog.SetUserLockedAsync(_alice.Guid, true, _time.GetUtcNow());
        cache.InvalidateAll();
        Assert.True((await cache.FindAsync(hash))!.User.Locked);

        // A locked holder is not kept: the unlock is seen by the next request even without an invalidation.
        await _catalog.SetUserLockedAsync(_alice.Guid, false, _time.GetUtcNow());
        Assert.False((await cache.FindAsync(hash))!.User.Locked);
    }

    [Fact]
    public async Task An_unknown_key_is_not_remembered_so_a_key_created_afterwards_works_at_once()
    {
        var cache = Cache();
        var hash = ApiKeys.Hash(ApiKeys.Generate());

        Assert.Null(await cache.FindAsync(hash));
        await _catalog.CreateApiKeyAsync(_alice.Guid, "new", hash);

        Assert.Equal(_alice, (await cache.FindAsync(hash))?.User);
    }

    [Fact]
    public async Task Zero_seconds_disables_the_cache()
    {
        var cache = Cache(seconds: 0);
        var (hash, key) = await KeyAsync();

        Assert.NotNull(await cache.FindAsync(hash));
        Assert.NotNull(await cache.FindAsync(hash));
        Assert.Equal(2, Reads);
        await _catalog.DeleteApiKeyAsync(_alice.Guid, key.Id);
        Assert.Null(await cache.FindAsync(hash));
    }

    [Theory]
    [InlineData(-1, 30, "Connect:ApiKeyCacheSeconds")]
    [InlineData(301, 30, "Connect:ApiKeyCacheSeconds")]
    [InlineData(10, 0, "Connect:ApiKeyLastUsedFlushSeconds")]
    [InlineData(10, 3601, "Connect:ApiKeyLastUsedFlushSeconds")]
    public void Out_of_range_settings_are_reported(int cacheSeconds, int flushSeconds, string setting)
    {
        var problems = new ConnectOptions { ApiKeyCacheSeconds = cacheSeconds, ApiKeyLastUsedFlushSeconds = flushSeconds }.Validate().ToList();
        Assert.Contains(problems, p => p.StartsWith(setting, StringComparison.Ordinal));
        Assert.Empty(new ConnectOptions { ApiKeyCacheSeconds = 0 }.Validate());
        Assert.Empty(new ConnectOptions().Validate());
    }

    [Fact]
    public async Task Uses_are_written_in_one_batch_per_flush_with_each_keys_latest_time()
    {
        var usage = new ApiKeyUsage(_store, _time, NullLogger<ApiKeyUsage>.Instance);
        var (h1, _) = await KeyAsync("one");
        var (h2, _) = await KeyAsync("two");

        usage.Record(h1);
        usage.Record(h2);
        _time.Advance(TimeSpan.FromSeconds(3));
        usage.Record(h1);
        Assert.All(await _catalog.ListApiKeysAsync(_alice.Guid), k => Assert.Null(k.LastUsedTime));

        await usage.FlushAsync();
        await usage.FlushAsync(); // nothing new: no write

        Assert.Equal(1, _observer.Count(nameof(ICatalogStore.RecordApiKeysUsedAsync)));
        var keys = await _catalog.ListApiKeysAsync(_alice.Guid);
        Assert.Equal(_time.GetUtcNow(), keys[0].LastUsedTime);
        Assert.Equal(_time.GetUtcNow().AddSeconds(-3), keys[1].LastUsedTime);
    }

    [Fact]
    public async Task The_flusher_writes_every_interval_and_on_a_graceful_stop()
    {
        var usage = new ApiKeyUsage(_store, _time, NullLogger<ApiKeyUsage>.Instance);
        using var flusher = new ApiKeyUsageFlusher(usage, _time, Options.Create(new ConnectOptions { ApiKeyLastUsedFlushSeconds = 30 }));
        var (hash, _) = await KeyAsync();
        var flushed = new SemaphoreSlim(0);
        _observer.Called += method =>
        {
            if (method == nameof(ICatalogStore.RecordApiKeysUsedAsync))
            {
                flushed.Release();
            }
        };
        await flusher.StartAsync(CancellationToken.None);

        usage.Record(hash);
        var usedAt = _time.GetUtcNow();
        _time.Advance(TimeSpan.FromSeconds(29));
        Assert.Null(Assert.Single(await _catalog.ListApiKeysAsync(_alice.Guid)).LastUsedTime);
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.True(await flushed.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(usedAt, Assert.Single(await _catalog.ListApiKeysAsync(_alice.Guid)).LastUsedTime);

        usage.Record(hash);
        await flusher.StopAsync(CancellationToken.None);
        Assert.Equal(_time.GetUtcNow(), Assert.Single(await _catalog.ListApiKeysAsync(_alice.Guid)).LastUsedTime);
    }

    public Task DisposeAsync()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        return Task.CompletedTask;
    }
}
