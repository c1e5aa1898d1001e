using System.Text;
using Connect.Core.Content;
using Connect.Core.Model;
using Connect.Data.Security;

namespace Connect.Data.Tests;

/// <summary>
/// The behaviour every <see cref="ICatalogStore"/> must have, whatever database is behind it. A backend gets the
/// whole suite by deriving from this class. Times used here have microsecond precision (what PostgreSQL keeps).
/// </summary>
public abstract class CatalogStoreContract
{
    /// <summary>A store over a fresh, empty database of its own, not yet migrated.</summary>
    protected abstract Task<ICatalogStore> CreateStoreAsync();

    /// <summary>A second, independent store instance over the same database as <paramref name="store"/> (a restart, or another node).</summary>
    protected abstract Task<ICatalogStore> OpenSameDatabaseAsync(ICatalogStore store);

    /// <summary>2024-05-17 10:30:15.123456 UTC.</summary>
    protected static readonly DateTimeOffset T0 = new DateTimeOffset(2024, 5, 17, 10, 30, 15, TimeSpan.Zero).AddTicks(1_234_560);

    protected static DateTimeOffset At(double seconds) => T0.AddTicks((long)Math.Round(seconds * 1_000_000) * 10);

    private async Task<ICatalogStore> StoreAsync()
    {
        var store = await CreateStoreAsync();
        await store.MigrateAsync();
        return store;
    }

    private static Task<UserInfo> UserAsync(ICatalogStore store, string name, string role = UserRoles.Publisher) =>
        store.CreateUserAsync(new NewUser(name, role, T0));

    private static ContentSettings Settings(UserInfo owner, string name) => new() { Name = name, OwnerGuid = owner.Guid };

    private async Task<(ICatalogStore Store, UserInfo Owner, ContentItem Item)> ContentFixtureAsync()
    {
        var store = await StoreAsync();
        var owner = await UserAsync(store, "owner");
        var item = await store.CreateContentAsync(Settings(owner, "app"), T0);
        return (store, owner, item);
    }

    private static NewJob Job(Guid content, string key, string host = "node-a", DateTimeOffset? start = null) =>
        new(key, content, null, null, "run_python_api", start ?? T0, host, null);

    private static void AssertUtc(DateTimeOffset? actual, DateTimeOffset expected)
    {
        Assert.NotNull(actual);
        Assert.Equal(expected, actual.Value);
        Assert.Equal(TimeSpan.Zero, actual.Value.Offset);
    }

    // ------------------------------------------------------------------ migrations

    [Fact]
    public async Task MigrateAsync_RunTwice_IsIdempotent()
    {
        var store = await CreateStoreAsync();
        await store.MigrateAsync();
        await store.MigrateAsync();

        var user = await UserAsync(store, "alice");
        await store.MigrateAsync();

        Assert.Equal(1, await store.CountUsersAsync());
        Assert.Equal(user, await store.GetUserAsync(user.Guid));
    }

    [Fact]
    public async Task MigrateAsync_OnExistingDatabase_KeepsData()
    {
        var (store, owner, item) = await ContentFixtureAsync();

        var reopened = await OpenSameDatabaseAsync(store);
        await reopened.MigrateAsync();
        await reopened.MigrateAsync();

        Assert.Equal(owner, await reopened.GetUserByNameAsync("owner"));
        Assert.Equal(item, await reopened.GetContentAsync(item.Guid));
        Assert.Equal(1, await reopened.CountUsersAsync());
    }

    // ------------------------------------------------------------------ users

    [Fact]
    public async Task CreateUser_RoundTripsEveryField()
    {
        var store = await StoreAsync();
        var now = At(1.5).ToOffset(TimeSpan.FromHours(2));

        var user = await store.CreateUserAsync(new NewUser("alice", UserRoles.Administrator, now)
        {
            Email = "alice@example.com",
            FirstName = "Alice",
            LastName = "Liddell",
        });

        Assert.True(user.Id > 0);
        Assert.NotEqual(Guid.Empty, user.Guid);
        Assert.Equal("alice", user.Username);
        Assert.Equal("alice@example.com", user.Email);
        Assert.Equal("Alice", user.FirstName);
        Assert.Equal("Liddell", user.LastName);
        Assert.Equal(UserRoles.Administrator, user.Role);
        AssertUtc(user.CreatedTime, now);
        AssertUtc(user.UpdatedTime, now);
        Assert.Null(user.ActiveTime);
        Assert.False(user.Locked);
        Assert.True(user.Confirmed);

        Assert.Equal(user, await store.GetUserAsync(user.Guid));
        Assert.Equal(user, await store.GetUserByNameAsync("alice"));
        Assert.Equal(1, await store.CountUsersAsync());
    }

    [Fact]
    public async Task CreateUser_DefaultsOptionalFieldsToEmpty()
    {
        var store = await StoreAsync();
        var user = await UserAsync(store, "bob", UserRoles.Viewer);

        Assert.Equal("", user.Email);
        Assert.Equal("", user.FirstName);
        Assert.Equal("", user.LastName);
        Assert.Equal(UserRoles.Viewer, user.Role);
    }

    [Fact]
    public async Task CreateUser_DuplicateUsername_Conflicts()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");

        await Assert.ThrowsAsync<CatalogConflictException>(() => UserAsync(store, "alice"));

        Assert.Equal(1, await store.CountUsersAsync());
        Assert.Equal([alice], await store.ListUsersAsync());
    }

    [Theory]
    [InlineData("ALICE")]
    [InlineData("alice")]
    [InlineData("aLiCe")]
    public async Task CreateUser_UsernamesAreUniqueIgnoringCase(string other)
    {
        var store = await StoreAsync();
        await UserAsync(store, "Alice");

        await Assert.ThrowsAsync<CatalogConflictException>(() => UserAsync(store, other));
        Assert.Equal(1, await store.CountUsersAsync());
    }

    [Fact]
    public async Task CreateUser_ConcurrentSameName_ExactlyOneSucceedsOthersConflict()
    {
        var store = await StoreAsync();
        var others = new List<ICatalogStore>();
        for (var i = 0; i < 4; i++)
        {
            others.Add(await OpenSameDatabaseAsync(store));
        }

        // Several rounds, all attempts released at once: the race between a name check and its insert is narrow.
        for (var round = 0; round < 30; round++)
        {
            var name = $"racer{round}";
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            var attempts = Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
            {
                await gate.Task;
                try
                {
                    return (object)await others[i % others.Count].CreateUserAsync(new NewUser(name, UserRoles.Publisher, T0));
                }
                catch (Exception e)
                {
                    return e;
                }
            })).ToArray();
            gate.SetResult();
            var results = await Task.WhenAll(attempts);

            Assert.Single(results.OfType<UserInfo>());
            Assert.All(results.Where(r => r is not UserInfo), r => Assert.IsType<CatalogConflictException>(r));
        }
        Assert.Equal(30, await store.CountUsersAsync());
    }

    [Fact]
    public async Task GetUserByName_IgnoresCase()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "Alice");

        Assert.Equal(alice, await store.GetUserByNameAsync("alice"));
        Assert.Equal(alice, await store.GetUserByNameAsync("ALICE"));
        Assert.Equal("Alice", (await store.GetUserByNameAsync("alice"))!.Username);
    }

    [Fact]
    public async Task GetUser_Unknown_ReturnsNull()
    {
        var store = await StoreAsync();
        await UserAsync(store, "alice");

        Assert.Null(await store.GetUserAsync(Guid.NewGuid()));
        Assert.Null(await store.GetUserByNameAsync("nobody"));
        Assert.Null(await store.GetUserByNameAsync(""));
    }

    [Fact]
    public async Task ListUsers_InCreationOrder()
    {
        var store = await StoreAsync();
        Assert.Empty(await store.ListUsersAsync());
        Assert.Equal(0, await store.CountUsersAsync());

        var zed = await UserAsync(store, "zed");
        var amy = await UserAsync(store, "amy");
        var mike = await UserAsync(store, "Mike", UserRoles.Viewer);

        var users = await store.ListUsersAsync();
        Assert.Equal([zed, amy, mike], users);
        Assert.Equal(3, users.Select(u => u.Guid).Distinct().Count());
        Assert.True(zed.Id < amy.Id && amy.Id < mike.Id);
        Assert.Equal(3, await store.CountUsersAsync());
    }

    // ------------------------------------------------------------------ API keys

    [Fact]
    public async Task CreateApiKey_IsListedAndFindsItsUser()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        var hash = ApiKeys.Hash(ApiKeys.Generate());
        var before = DateTimeOffset.UtcNow.AddMinutes(-1);

        var key = await store.CreateApiKeyAsync(alice.Guid, "laptop", hash);

        Assert.True(key.Id > 0);
        Assert.Equal(alice.Guid, key.UserGuid);
        Assert.Equal("laptop", key.Name);
        Assert.Null(key.LastUsedTime);
        Assert.InRange(key.CreatedTime, before, DateTimeOffset.UtcNow.AddMinutes(1));
        Assert.Equal([key], await store.ListApiKeysAsync(alice.Guid));

        var found = await store.FindUserByKeyHashAsync(hash);
        Assert.Equal(new ApiKeyHolder(alice, ContentScope: null), found);
    }

    [Fact]
    public async Task FindUserByKeyHash_UnknownHash_ReturnsNullAndMarksNothing()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        await store.CreateApiKeyAsync(alice.Guid, "k", ApiKeys.Hash("real"));

        Assert.Null(await store.FindUserByKeyHashAsync(ApiKeys.Hash("other")));
        Assert.Null(await store.FindUserByKeyHashAsync("real")); // the plaintext is not the hash
        Assert.Null(Assert.Single(await store.ListApiKeysAsync(alice.Guid)).LastUsedTime);
    }

    [Fact]
    public async Task FindUserByKeyHash_MarksNothing()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        await store.CreateApiKeyAsync(alice.Guid, "k", ApiKeys.Hash("k"));

        Assert.NotNull(await store.FindUserByKeyHashAsync(ApiKeys.Hash("k")));

        Assert.Null(Assert.Single(await store.ListApiKeysAsync(alice.Guid)).LastUsedTime);
    }

    [Fact]
    public async Task RecordApiKeysUsed_SetsEachKeysLastUsedTime_InOneBatch_OnlyForward()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        var bob = await UserAsync(store, "bob");
        var unused = await store.CreateApiKeyAsync(alice.Guid, "unused", ApiKeys.Hash("k0"));
        await store.CreateApiKeyAsync(alice.Guid, "a", ApiKeys.Hash("k1"));
        await store.CreateApiKeyAsync(bob.Guid, "b", ApiKeys.Hash("k2"));

        await store.RecordApiKeysUsedAsync(
            [new(ApiKeys.Hash("k1"), At(5)), new(ApiKeys.Hash("k2"), At(6)), new(ApiKeys.Hash("deleted-meanwhile"), At(7))]);

        var keys = await store.ListApiKeysAsync(alice.Guid);
        Assert.Equal(unused, keys[0]);
        AssertUtc(keys[1].LastUsedTime, At(5));
        AssertUtc(Assert.Single(await store.ListApiKeysAsync(bob.Guid)).LastUsedTime, At(6));

        // A late batch (another node's, flushed after ours) does not move the mark back; a later one moves it forward.
        await store.RecordApiKeysUsedAsync([new(ApiKeys.Hash("k1"), At(1))]);
        AssertUtc((await store.ListApiKeysAsync(alice.Guid))[1].LastUsedTime, At(5));
        await store.RecordApiKeysUsedAsync([new(ApiKeys.Hash("k1"), At(7200))]);
        AssertUtc((await store.ListApiKeysAsync(alice.Guid))[1].LastUsedTime, At(7200));

        await store.RecordApiKeysUsedAsync([]);
        Assert.Equal(unused, (await store.ListApiKeysAsync(alice.Guid))[0]);
    }

    [Fact]
    public async Task SetUserLocked_LocksAndUnlocks_AndTheKeyLookupSeesIt()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        await store.CreateApiKeyAsync(alice.Guid, "k", ApiKeys.Hash("k"));

        var locked = await store.SetUserLockedAsync(alice.Guid, true, At(60));

        Assert.True(locked!.Locked);
        AssertUtc(locked.UpdatedTime, At(60));
        Assert.Equal(locked, await store.GetUserAsync(alice.Guid));
        Assert.True((await store.FindUserByKeyHashAsync(ApiKeys.Hash("k")))!.User.Locked);
        Assert.False((await store.SetUserLockedAsync(alice.Guid, false, At(61)))!.Locked);
        Assert.Null(await store.SetUserLockedAsync(Guid.NewGuid(), true, At(62)));
    }

    [Fact]
    public async Task ListApiKeys_OnlyThatUsersKeysInCreationOrder()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        var bob = await UserAsync(store, "bob");
        var a1 = await store.CreateApiKeyAsync(alice.Guid, "a1", ApiKeys.Hash("a1"));
        var b1 = await store.CreateApiKeyAsync(bob.Guid, "b1", ApiKeys.Hash("b1"));
        var a2 = await store.CreateApiKeyAsync(alice.Guid, "a2", ApiKeys.Hash("a2"));

        Assert.Equal([a1, a2], await store.ListApiKeysAsync(alice.Guid));
        Assert.Equal([b1], await store.ListApiKeysAsync(bob.Guid));
        Assert.Empty(await store.ListApiKeysAsync(Guid.NewGuid()));
        Assert.Equal(new ApiKeyHolder(bob, ContentScope: null), await store.FindUserByKeyHashAsync(ApiKeys.Hash("b1")));
    }

    [Fact]
    public async Task DeleteApiKey_OnlyTheOwnerCanDeleteIt()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        var bob = await UserAsync(store, "bob");
        var hash = ApiKeys.Hash("alice-key");
        var key = await store.CreateApiKeyAsync(alice.Guid, "k", hash);

        Assert.False(await store.DeleteApiKeyAsync(bob.Guid, key.Id));
        Assert.Equal(new ApiKeyHolder(alice, ContentScope: null), await store.FindUserByKeyHashAsync(hash));
        Assert.Single(await store.ListApiKeysAsync(alice.Guid));

        Assert.True(await store.DeleteApiKeyAsync(alice.Guid, key.Id));
        Assert.Null(await store.FindUserByKeyHashAsync(hash));
        Assert.Empty(await store.ListApiKeysAsync(alice.Guid));
        Assert.False(await store.DeleteApiKeyAsync(alice.Guid, key.Id));
        Assert.False(await store.DeleteApiKeyAsync(alice.Guid, 987654));
    }

    [Fact]
    public async Task DeleteApiKeysNamed_RemovesExactlyThoseKeys()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        var bob = await UserAsync(store, "bob");
        await store.CreateApiKeyAsync(alice.Guid, "content-process:j1", ApiKeys.Hash("p1"));
        await store.CreateApiKeyAsync(bob.Guid, "content-process:j1", ApiKeys.Hash("p2"));
        await store.CreateApiKeyAsync(alice.Guid, "content-process:j10", ApiKeys.Hash("p3"));
        await store.CreateApiKeyAsync(alice.Guid, "mine", ApiKeys.Hash("p4"));

        Assert.Equal(2, await store.DeleteApiKeysNamedAsync("content-process:j1"));

        Assert.Null(await store.FindUserByKeyHashAsync(ApiKeys.Hash("p1")));
        Assert.Null(await store.FindUserByKeyHashAsync(ApiKeys.Hash("p2")));
        Assert.Equal(new ApiKeyHolder(alice, ContentScope: null), await store.FindUserByKeyHashAsync(ApiKeys.Hash("p3")));
        Assert.Equal(new ApiKeyHolder(alice, ContentScope: null), await store.FindUserByKeyHashAsync(ApiKeys.Hash("p4")));
        Assert.Equal(0, await store.DeleteApiKeysNamedAsync("content-process:j1"));
    }

    [Fact]
    public async Task CreateApiKey_ScopedToContent_IsListedAndFoundWithItsScope()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var scopedHash = ApiKeys.Hash("process");
        var plainHash = ApiKeys.Hash("laptop");

        var scoped = await store.CreateApiKeyAsync(owner.Guid, "content-process:j1", scopedHash, item.Guid);
        var plain = await store.CreateApiKeyAsync(owner.Guid, "laptop", plainHash);

        Assert.Equal(item.Guid, scoped.ContentScope);
        Assert.Null(plain.ContentScope);
        Assert.Equal([scoped, plain], await store.ListApiKeysAsync(owner.Guid));
        Assert.Equal(new ApiKeyHolder(owner, item.Guid), await store.FindUserByKeyHashAsync(scopedHash));
        Assert.Equal(new ApiKeyHolder(owner, ContentScope: null), await store.FindUserByKeyHashAsync(plainHash));
        await store.RecordApiKeysUsedAsync([new(scopedHash, At(3))]);
        AssertUtc((await store.ListApiKeysAsync(owner.Guid))[0].LastUsedTime, At(3));

        // A restart (or another node) reads the same scope.
        var reopened = await OpenSameDatabaseAsync(store);
        await reopened.MigrateAsync();
        Assert.Equal(item.Guid, (await reopened.FindUserByKeyHashAsync(scopedHash))?.ContentScope);
    }

    [Fact]
    public async Task ScopedApiKey_GoesWithItsContent_OtherKeysStay()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var other = await store.CreateContentAsync(Settings(owner, "other"), T0);
        await store.CreateApiKeyAsync(owner.Guid, "content-process:j1", ApiKeys.Hash("p1"), item.Guid);
        await store.CreateApiKeyAsync(owner.Guid, "content-process:j2", ApiKeys.Hash("p2"), other.Guid);
        await store.CreateApiKeyAsync(owner.Guid, "laptop", ApiKeys.Hash("k"));

        Assert.True(await store.DeleteContentAsync(item.Guid));

        Assert.Null(await store.FindUserByKeyHashAsync(ApiKeys.Hash("p1")));
        Assert.Equal(other.Guid, (await store.FindUserByKeyHashAsync(ApiKeys.Hash("p2")))?.ContentScope);
        Assert.Equal(new ApiKeyHolder(owner, ContentScope: null), await store.FindUserByKeyHashAsync(ApiKeys.Hash("k")));
        Assert.Equal(["content-process:j2", "laptop"], (await store.ListApiKeysAsync(owner.Guid)).Select(k => k.Name));
    }

    [Fact]
    public async Task CreateApiKey_ScopedToMissingContent_FailsAndStoresNothing()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");

        await Assert.ThrowsAnyAsync<Exception>(() => store.CreateApiKeyAsync(alice.Guid, "k", ApiKeys.Hash("k"), Guid.NewGuid()));

        Assert.Empty(await store.ListApiKeysAsync(alice.Guid));
        Assert.Null(await store.FindUserByKeyHashAsync(ApiKeys.Hash("k")));
    }

    // ------------------------------------------------------------------ bootstrap

    [Fact]
    public async Task BootstrapAdministrator_FirstCall_CreatesAdminWithKey()
    {
        var store = await StoreAsync();
        var hash = ApiKeys.Hash("bootstrap");

        var admin = await store.BootstrapAdministratorAsync(new NewUser("admin", UserRoles.Administrator, T0) { Email = "a@x" }, "bootstrap", hash);

        Assert.NotNull(admin);
        Assert.Equal("admin", admin.Username);
        Assert.Equal("a@x", admin.Email);
        Assert.True(admin.IsAdmin);
        AssertUtc(admin.CreatedTime, T0);
        Assert.Equal([admin], await store.ListUsersAsync());
        var key = Assert.Single(await store.ListApiKeysAsync(admin.Guid));
        Assert.Equal("bootstrap", key.Name);
        Assert.Equal(new ApiKeyHolder(admin, ContentScope: null), await store.FindUserByKeyHashAsync(hash));
    }

    [Fact]
    public async Task BootstrapAdministrator_SecondCall_ReturnsNullAndCreatesNothing()
    {
        var store = await StoreAsync();
        var first = await store.BootstrapAdministratorAsync(new NewUser("admin", UserRoles.Administrator, T0), "k", ApiKeys.Hash("one"));

        var second = await store.BootstrapAdministratorAsync(new NewUser("admin2", UserRoles.Administrator, T0), "k", ApiKeys.Hash("two"));

        Assert.Null(second);
        Assert.Equal([first!], await store.ListUsersAsync());
        Assert.Null(await store.GetUserByNameAsync("admin2"));
        Assert.Null(await store.FindUserByKeyHashAsync(ApiKeys.Hash("two")));
        Assert.Single(await store.ListApiKeysAsync(first!.Guid));
    }

    [Fact]
    public async Task BootstrapAdministrator_WhenAnyUserExists_ReturnsNull()
    {
        var store = await StoreAsync();
        var viewer = await UserAsync(store, "viewer", UserRoles.Viewer);

        Assert.Null(await store.BootstrapAdministratorAsync(new NewUser("admin", UserRoles.Administrator, T0), "k", ApiKeys.Hash("k")));
        Assert.Equal([viewer], await store.ListUsersAsync());
        Assert.Null(await store.FindUserByKeyHashAsync(ApiKeys.Hash("k")));
    }

    [Fact]
    public async Task BootstrapAdministrator_KeyFailure_RollsBackTheUser()
    {
        var store = await StoreAsync();

        // A key hash the database refuses (NOT NULL) fails the second insert: the first must not survive it.
        await Assert.ThrowsAnyAsync<Exception>(() => store.BootstrapAdministratorAsync(new NewUser("admin", UserRoles.Administrator, T0), "k", null!));

        Assert.Equal(0, await store.CountUsersAsync());
        Assert.Null(await store.GetUserByNameAsync("admin"));
        Assert.NotNull(await store.BootstrapAdministratorAsync(new NewUser("admin", UserRoles.Administrator, T0), "k", ApiKeys.Hash("k")));
    }

    [Fact]
    public async Task BootstrapAdministrator_Concurrent_ExactlyOneSucceeds()
    {
        var store = await StoreAsync();
        var nodes = new List<ICatalogStore> { store };
        for (var i = 0; i < 3; i++)
        {
            nodes.Add(await OpenSameDatabaseAsync(store));
        }

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(i => Task.Run(() =>
            nodes[i % nodes.Count].BootstrapAdministratorAsync(new NewUser($"admin{i}", UserRoles.Administrator, T0), "k", ApiKeys.Hash($"key{i}")))));

        var winner = Assert.Single(results, r => r is not null)!;
        var index = Array.IndexOf(results, winner);
        Assert.Equal([winner], await store.ListUsersAsync());
        Assert.Single(await store.ListApiKeysAsync(winner.Guid));
        for (var i = 0; i < results.Length; i++)
        {
            var found = await store.FindUserByKeyHashAsync(ApiKeys.Hash($"key{i}"));
            Assert.Equal(i == index ? winner : null, found?.User);
        }
    }

    // ------------------------------------------------------------------ content

    public static TheoryData<RuntimeSettings> RuntimeCases => new()
    {
        new RuntimeSettings
        {
            ConnectionTimeout = 3601, ReadTimeout = 3602, InitTimeout = 61, IdleTimeout = 121,
            MaxProcesses = 7, MinProcesses = 2, MaxConnsPerProcess = 33, LoadFactor = 0.35,
        },
        RuntimeSettings.Empty,
        new RuntimeSettings { ConnectionTimeout = 0, MinProcesses = 0, LoadFactor = 0.0 },
        new RuntimeSettings { ReadTimeout = 10, MaxProcesses = 1, LoadFactor = 1.0 },
        new RuntimeSettings { IdleTimeout = 5, MaxConnsPerProcess = 1 },
    };

    [Theory]
    [MemberData(nameof(RuntimeCases))]
    public async Task CreateContent_RoundTripsEverySetting(RuntimeSettings runtime)
    {
        var store = await StoreAsync();
        var owner = await UserAsync(store, "owner");
        var settings = new ContentSettings
        {
            Name = "my-app",
            Title = "My App — ünïcode",
            Description = "multi\nline",
            AccessType = AccessTypes.LoggedIn,
            Locked = true,
            LockedMessage = "closed for maintenance",
            Runtime = runtime,
            OwnerGuid = owner.Guid,
        };
        var now = At(0.25).ToOffset(TimeSpan.FromHours(-5));

        var item = await store.CreateContentAsync(settings, now);

        Assert.True(item.Id > 0);
        Assert.NotEqual(Guid.Empty, item.Guid);
        Assert.Equal(settings, item.Settings);
        Assert.Equal(runtime, item.Settings.Runtime);
        AssertUtc(item.CreatedTime, now);
        Assert.Null(item.LastDeployedTime);
        Assert.Null(item.BundleId);
        Assert.Equal(AppModes.Unknown, item.AppMode);
        Assert.Equal("", item.ContentCategory);
        Assert.Null(item.PyVersion);
        Assert.Null(item.Entrypoint);

        var read = await store.GetContentAsync(item.Guid);
        Assert.Equal(item, read);
        Assert.Equal(runtime.LoadFactor, read!.Settings.Runtime.LoadFactor);
        Assert.Equal(item, await store.GetContentByIdAsync(item.Id));
        Assert.Null(await store.GetContentByIdAsync(item.Id + 1000));
    }

    [Fact]
    public async Task CreateContent_Defaults()
    {
        var (store, owner, item) = await ContentFixtureAsync();

        Assert.Equal("app", item.Settings.Name);
        Assert.Equal("", item.Settings.Title);
        Assert.Equal(AccessTypes.Acl, item.Settings.AccessType);
        Assert.False(item.Settings.Locked);
        Assert.Equal(RuntimeSettings.Empty, item.Settings.Runtime);
        Assert.Equal(owner.Guid, item.Settings.OwnerGuid);
        Assert.Equal(item, await store.GetContentAsync(item.Guid));
        Assert.Null(await store.GetContentAsync(Guid.NewGuid()));
    }

    [Fact]
    public async Task CreateContent_DuplicateNameForSameOwner_Conflicts_OtherOwnerMayReuseIt()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var other = await UserAsync(store, "other");

        await Assert.ThrowsAsync<CatalogConflictException>(() => store.CreateContentAsync(Settings(owner, "app") with { Title = "again" }, T0));
        Assert.Equal([item], await store.ListContentAsync(new ContentQuery()));

        var theirs = await store.CreateContentAsync(Settings(other, "app"), T0);
        Assert.NotEqual(item.Guid, theirs.Guid);
        Assert.Equal([item, theirs], await store.ListContentAsync(new ContentQuery(Name: "app")));
    }

    [Fact]
    public async Task ListContent_FiltersByNameAndOwnerInCreationOrder()
    {
        var store = await StoreAsync();
        var alice = await UserAsync(store, "alice");
        var bob = await UserAsync(store, "bob");
        var a1 = await store.CreateContentAsync(Settings(alice, "zeta"), T0);
        var b1 = await store.CreateContentAsync(Settings(bob, "zeta"), T0);
        var a2 = await store.CreateContentAsync(Settings(alice, "alpha"), At(1));
        var b2 = await store.CreateContentAsync(Settings(bob, "beta"), At(2));

        Assert.Equal([a1, b1, a2, b2], await store.ListContentAsync(new ContentQuery()));
        Assert.Equal([a1, b1], await store.ListContentAsync(new ContentQuery(Name: "zeta")));
        Assert.Equal([a1, a2], await store.ListContentAsync(new ContentQuery(OwnerGuid: alice.Guid)));
        Assert.Equal([b1, b2], await store.ListContentAsync(new ContentQuery(OwnerGuid: bob.Guid)));
        Assert.Equal([b1], await store.ListContentAsync(new ContentQuery("zeta", bob.Guid)));
        Assert.Empty(await store.ListContentAsync(new ContentQuery("alpha", bob.Guid)));
        Assert.Empty(await store.ListContentAsync(new ContentQuery(Name: "nope")));
        Assert.Empty(await store.ListContentAsync(new ContentQuery(OwnerGuid: Guid.NewGuid())));
    }

    [Fact]
    public async Task UpdateContentSettings_BumpsRowVersion_AndRejectsStaleVersion()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var changed = item.Settings with
        {
            Title = "New title",
            Description = "d",
            AccessType = AccessTypes.All,
            Locked = true,
            LockedMessage = "m",
            Runtime = new RuntimeSettings { MinProcesses = 1, MaxProcesses = 4, LoadFactor = 0.8 },
        };

        var updated = await store.UpdateContentSettingsAsync(item.Guid, changed, item.RowVersion);

        Assert.Equal(changed, updated.Settings);
        Assert.True(updated.RowVersion > item.RowVersion);
        Assert.Equal(item.Id, updated.Id);
        Assert.Equal(item.CreatedTime, updated.CreatedTime);
        Assert.Equal(updated, await store.GetContentAsync(item.Guid));

        // The same stale version again: rejected, the row is left as it was.
        await Assert.ThrowsAsync<CatalogConcurrencyException>(() =>
            store.UpdateContentSettingsAsync(item.Guid, changed with { Title = "lost update" }, item.RowVersion));
        Assert.Equal(updated, await store.GetContentAsync(item.Guid));

        // Back to nulls with the current version.
        var cleared = await store.UpdateContentSettingsAsync(item.Guid, changed with { Runtime = RuntimeSettings.Empty }, updated.RowVersion);
        Assert.Equal(RuntimeSettings.Empty, cleared.Settings.Runtime);
        Assert.True(cleared.RowVersion > updated.RowVersion);
        Assert.Equal(owner.Guid, cleared.Settings.OwnerGuid);
    }

    [Fact]
    public async Task UpdateContentSettings_MissingItem_IsAConcurrencyFailure()
    {
        var (store, _, item) = await ContentFixtureAsync();
        Assert.True(await store.DeleteContentAsync(item.Guid));

        await Assert.ThrowsAsync<CatalogConcurrencyException>(() => store.UpdateContentSettingsAsync(item.Guid, item.Settings, item.RowVersion));
        Assert.Null(await store.GetContentAsync(item.Guid));
    }

    [Fact]
    public async Task UpdateContentSettings_RenameOntoAnotherItemsName_Conflicts()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var other = await store.CreateContentAsync(Settings(owner, "taken"), T0);
        var stranger = await UserAsync(store, "stranger");
        await store.CreateContentAsync(Settings(stranger, "free-for-owner"), T0);

        await Assert.ThrowsAsync<CatalogConflictException>(() =>
            store.UpdateContentSettingsAsync(item.Guid, item.Settings with { Name = "taken" }, item.RowVersion));
        Assert.Equal(item, await store.GetContentAsync(item.Guid));
        Assert.Equal(other, await store.GetContentAsync(other.Guid));

        // Keeping its own name, or taking a name only another owner uses, is fine.
        var same = await store.UpdateContentSettingsAsync(item.Guid, item.Settings with { Title = "t" }, item.RowVersion);
        var renamed = await store.UpdateContentSettingsAsync(item.Guid, same.Settings with { Name = "free-for-owner" }, same.RowVersion);
        Assert.Equal("free-for-owner", renamed.Settings.Name);
        Assert.Equal([renamed], await store.ListContentAsync(new ContentQuery("free-for-owner", owner.Guid)));
    }

    [Fact]
    public async Task UpdateContentSettings_StaleVersion_IsAConcurrencyFailure_EvenOntoATakenName()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        await store.CreateContentAsync(Settings(owner, "taken"), T0);
        var current = await store.UpdateContentSettingsAsync(item.Guid, item.Settings with { Title = "t" }, item.RowVersion);

        // The writer's view is stale: it must re-read before the name it asks for can be judged.
        await Assert.ThrowsAsync<CatalogConcurrencyException>(() =>
            store.UpdateContentSettingsAsync(item.Guid, item.Settings with { Name = "taken" }, item.RowVersion));
        Assert.Equal(current, await store.GetContentAsync(item.Guid));
        await Assert.ThrowsAsync<CatalogConflictException>(() =>
            store.UpdateContentSettingsAsync(item.Guid, current.Settings with { Name = "taken" }, current.RowVersion));
    }

    [Fact]
    public async Task ActivateBundle_SetsDeploymentFields_AndChecksVersion()
    {
        var (store, _, item) = await ContentFixtureAsync();
        var bundle = await store.AddBundleAsync(new NewBundle(item.Guid, null, 10, "md5", "sha1", T0));
        var deployed = At(42.000001).ToOffset(TimeSpan.FromHours(9));

        var active = await store.ActivateBundleAsync(item.Guid,
            new BundleActivation(bundle.Id, AppModes.PythonFastApi, "3.12.4", "app:app", "api", deployed), item.RowVersion);

        Assert.Equal(bundle.Id, active.BundleId);
        Assert.Equal(AppModes.PythonFastApi, active.AppMode);
        Assert.Equal("3.12.4", active.PyVersion);
        Assert.Equal("app:app", active.Entrypoint);
        Assert.Equal("api", active.ContentCategory);
        AssertUtc(active.LastDeployedTime, deployed);
        Assert.True(active.RowVersion > item.RowVersion);
        Assert.Equal(item.Settings, active.Settings);
        Assert.Equal(active, await store.GetContentAsync(item.Guid));

        await Assert.ThrowsAsync<CatalogConcurrencyException>(() => store.ActivateBundleAsync(item.Guid,
            new BundleActivation(bundle.Id, AppModes.Static, null, null, "", At(50)), item.RowVersion));
        Assert.Equal(active, await store.GetContentAsync(item.Guid));

        // Nullable deployment fields can be cleared again.
        var plain = await store.ActivateBundleAsync(item.Guid,
            new BundleActivation(bundle.Id, AppModes.Static, null, null, "site", At(60)), active.RowVersion);
        Assert.Null(plain.PyVersion);
        Assert.Null(plain.Entrypoint);
        Assert.Equal(AppModes.Static, plain.AppMode);
        AssertUtc(plain.LastDeployedTime, At(60));

        // A settings write after a deploy keeps the deployment fields.
        var retitled = await store.UpdateContentSettingsAsync(item.Guid, plain.Settings with { Title = "x" }, plain.RowVersion);
        Assert.Equal(plain with { Settings = plain.Settings with { Title = "x" }, RowVersion = retitled.RowVersion }, retitled);

        await Assert.ThrowsAsync<CatalogConcurrencyException>(() => store.ActivateBundleAsync(Guid.NewGuid(),
            new BundleActivation(bundle.Id, AppModes.Static, null, null, "", At(50)), 1));
    }

    [Fact]
    public async Task DeleteContent_CascadesToBundlesEnvironmentTasksAndJobs()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var keep = await store.CreateContentAsync(Settings(owner, "keep"), T0);
        foreach (var c in new[] { item, keep })
        {
            await store.AddBundleAsync(new NewBundle(c.Guid, owner.Guid, 1, "m", "s", T0));
            await store.UpdateEnvironmentAsync(c.Guid, [new("SECRET", [1, 2, 3])], replaceAll: false);
            await store.CreateTaskAsync(new TaskInfo { Id = $"task-{c.Guid}", ContentGuid = c.Guid, Kind = "deploy", CreatedTime = T0 });
            await store.AppendTaskOutputAsync($"task-{c.Guid}", 0, ["line"]);
            await store.AddJobAsync(Job(c.Guid, $"job-{c.Guid}"));
        }

        Assert.True(await store.DeleteContentAsync(item.Guid));

        Assert.Null(await store.GetContentAsync(item.Guid));
        Assert.Empty(await store.ListBundlesAsync(item.Guid));
        Assert.Empty(await store.GetEnvironmentAsync(item.Guid));
        Assert.Empty(await store.GetEnvironmentNamesAsync(item.Guid));
        Assert.Null(await store.GetTaskAsync($"task-{item.Guid}"));
        Assert.Empty(await store.GetTaskOutputAsync($"task-{item.Guid}", 0));
        Assert.Empty(await store.ListJobsAsync(item.Guid));
        Assert.Null(await store.GetJobAsync(item.Guid, $"job-{item.Guid}"));
        Assert.Equal([keep], await store.ListContentAsync(new ContentQuery()));

        // The other item is untouched.
        Assert.Single(await store.ListBundlesAsync(keep.Guid));
        Assert.Equal(["SECRET"], await store.GetEnvironmentNamesAsync(keep.Guid));
        Assert.NotNull(await store.GetTaskAsync($"task-{keep.Guid}"));
        Assert.Equal(["line"], await store.GetTaskOutputAsync($"task-{keep.Guid}", 0));
        Assert.Single(await store.ListJobsAsync(keep.Guid));

        // The name is free again, and a second delete finds nothing.
        Assert.False(await store.DeleteContentAsync(item.Guid));
        await store.CreateContentAsync(Settings(owner, "app"), T0);
    }

    [Fact]
    public async Task ListContentNeedingProcesses_OnlyDeployedItemsWithMinProcesses()
    {
        var store = await StoreAsync();
        var owner = await UserAsync(store, "owner");
        async Task<ContentItem> Make(string name, int? min, bool deployed)
        {
            var item = await store.CreateContentAsync(Settings(owner, name) with { Runtime = new RuntimeSettings { MinProcesses = min } }, T0);
            if (!deployed)
            {
                return item;
            }
            var bundle = await store.AddBundleAsync(new NewBundle(item.Guid, null, 1, "m", "s", T0));
            return await store.ActivateBundleAsync(item.Guid, new BundleActivation(bundle.Id, AppModes.PythonApi, "3.12", null, "", T0), item.RowVersion);
        }

        var wanted = await Make("wanted", 2, deployed: true);
        await Make("undeployed", 2, deployed: false);
        await Make("zero", 0, deployed: true);
        await Make("default", null, deployed: true);

        Assert.Equal([wanted], await store.ListContentNeedingProcessesAsync());
    }

    // ------------------------------------------------------------------ bundles

    [Fact]
    public async Task Bundles_AddGetListDelete()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var other = await store.CreateContentAsync(Settings(owner, "other"), T0);
        var created = At(3.5).ToOffset(TimeSpan.FromHours(1));

        var b1 = await store.AddBundleAsync(new NewBundle(item.Guid, owner.Guid, 12345678901, "d41d8cd98f00b204e9800998ecf8427e", "da39a3ee5e6b4b0d3255bfef95601890afd80709", created));
        var b2 = await store.AddBundleAsync(new NewBundle(item.Guid, null, 0, "m2", "s2", At(4)));
        var b3 = await store.AddBundleAsync(new NewBundle(other.Guid, null, 1, "m3", "s3", At(5)));

        Assert.True(b1.Id > 0);
        Assert.Equal(item.Guid, b1.ContentGuid);
        Assert.Equal(owner.Guid, b1.CreatedBy);
        Assert.Equal(12345678901, b1.Size);
        Assert.Equal("d41d8cd98f00b204e9800998ecf8427e", b1.Md5);
        Assert.Equal("da39a3ee5e6b4b0d3255bfef95601890afd80709", b1.Sha1);
        AssertUtc(b1.CreatedTime, created);
        Assert.Null(b1.PyVersion);
        Assert.Null(b2.CreatedBy);

        Assert.Equal(b1, await store.GetBundleAsync(item.Guid, b1.Id));
        Assert.Equal(b2, await store.GetBundleAsync(item.Guid, b2.Id));
        Assert.Null(await store.GetBundleAsync(other.Guid, b1.Id));
        Assert.Null(await store.GetBundleAsync(Guid.NewGuid(), b1.Id));
        Assert.Null(await store.GetBundleAsync(item.Guid, b3.Id + 1000));
        Assert.Equal([b1, b2], await store.ListBundlesAsync(item.Guid));
        Assert.Equal([b3], await store.ListBundlesAsync(other.Guid));

        Assert.False(await store.DeleteBundleAsync(other.Guid, b1.Id));
        Assert.Equal(b1, await store.GetBundleAsync(item.Guid, b1.Id));
        Assert.True(await store.DeleteBundleAsync(item.Guid, b1.Id));
        Assert.False(await store.DeleteBundleAsync(item.Guid, b1.Id));
        Assert.Null(await store.GetBundleAsync(item.Guid, b1.Id));
        Assert.Equal([b2], await store.ListBundlesAsync(item.Guid));
        Assert.Equal([b3], await store.ListBundlesAsync(other.Guid));
    }

    [Fact]
    public async Task SetBundlePythonVersion_SetsAndClears()
    {
        var (store, _, item) = await ContentFixtureAsync();
        var b1 = await store.AddBundleAsync(new NewBundle(item.Guid, null, 1, "m", "s", T0));
        var b2 = await store.AddBundleAsync(new NewBundle(item.Guid, null, 1, "m", "s", T0));

        await store.SetBundlePythonVersionAsync(b1.Id, "3.11.9");
        Assert.Equal(b1 with { PyVersion = "3.11.9" }, await store.GetBundleAsync(item.Guid, b1.Id));
        Assert.Equal(b2, await store.GetBundleAsync(item.Guid, b2.Id));

        await store.SetBundlePythonVersionAsync(b1.Id, null);
        Assert.Equal(b1, await store.GetBundleAsync(item.Guid, b1.Id));
    }

    // ------------------------------------------------------------------ environment

    [Fact]
    public async Task Environment_SealedBytesRoundTrip()
    {
        var (store, _, item) = await ContentFixtureAsync();
        var box = new SecretBox(Enumerable.Range(0, 32).Select(i => (byte)i).ToArray());
        var sealedValue = box.Seal("postgres://user:pässwörd@db/x");
        var binary = Enumerable.Range(0, 256).Select(i => (byte)i).ToArray();

        var names = await store.UpdateEnvironmentAsync(item.Guid, [new("DATABASE", sealedValue), new("BINARY", binary), new("EMPTYISH", [0]), new("EMPTY", [])], replaceAll: false);

        Assert.Equal(["BINARY", "DATABASE", "EMPTY", "EMPTYISH"], names);
        var env = await store.GetEnvironmentAsync(item.Guid);
        Assert.Equal(4, env.Count);
        Assert.Empty(env["EMPTY"]);
        Assert.Equal(sealedValue, env["DATABASE"]);
        Assert.Equal(binary, env["BINARY"]);
        Assert.Equal(new byte[] { 0 }, env["EMPTYISH"]);
        Assert.Equal("postgres://user:pässwörd@db/x", box.Open(env["DATABASE"]));
    }

    [Fact]
    public async Task Environment_PatchSemantics_SetOverwriteDelete()
    {
        var (store, _, item) = await ContentFixtureAsync();
        Assert.Empty(await store.GetEnvironmentNamesAsync(item.Guid));
        Assert.Empty(await store.GetEnvironmentAsync(item.Guid));

        Assert.Equal(["ALPHA", "MIDDLE", "ZED"],
            await store.UpdateEnvironmentAsync(item.Guid, [new("ZED", B("z")), new("ALPHA", B("a")), new("MIDDLE", B("m"))], replaceAll: false));

        // Overwrite one, delete one, add one; untouched names stay.
        var names = await store.UpdateEnvironmentAsync(item.Guid, [new("ALPHA", B("a2")), new("ZED", null), new("BETA", B("b"))], replaceAll: false);

        Assert.Equal(["ALPHA", "BETA", "MIDDLE"], names);
        Assert.Equal(names, await store.GetEnvironmentNamesAsync(item.Guid));
        var env = await store.GetEnvironmentAsync(item.Guid);
        Assert.Equal(3, env.Count);
        Assert.Equal("a2", S(env["ALPHA"]));
        Assert.Equal("b", S(env["BETA"]));
        Assert.Equal("m", S(env["MIDDLE"]));

        // Deleting a name that is not set is a no-op; an empty patch changes nothing.
        Assert.Equal(["ALPHA", "BETA", "MIDDLE"], await store.UpdateEnvironmentAsync(item.Guid, [new("NOPE", null)], replaceAll: false));
        Assert.Equal(["ALPHA", "BETA", "MIDDLE"], await store.UpdateEnvironmentAsync(item.Guid, [], replaceAll: false));
    }

    [Fact]
    public async Task Environment_ReplaceAll_RemovesEverythingElse()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var other = await store.CreateContentAsync(Settings(owner, "other"), T0);
        await store.UpdateEnvironmentAsync(item.Guid, [new("OLD", B("o")), new("KEPT", B("k1"))], replaceAll: false);
        await store.UpdateEnvironmentAsync(other.Guid, [new("OLD", B("other"))], replaceAll: false);

        var names = await store.UpdateEnvironmentAsync(item.Guid, [new("KEPT", B("k2")), new("NEW", B("n")), new("GONE", null)], replaceAll: true);

        Assert.Equal(["KEPT", "NEW"], names);
        var env = await store.GetEnvironmentAsync(item.Guid);
        Assert.Equal("k2", S(env["KEPT"]));
        Assert.Equal("n", S(env["NEW"]));
        Assert.False(env.ContainsKey("OLD"));
        Assert.Equal("other", S((await store.GetEnvironmentAsync(other.Guid))["OLD"]));

        Assert.Empty(await store.UpdateEnvironmentAsync(item.Guid, [], replaceAll: true));
        Assert.Empty(await store.GetEnvironmentAsync(item.Guid));
        Assert.Equal(["OLD"], await store.GetEnvironmentNamesAsync(other.Guid));
    }

    private static byte[] B(string s) => Encoding.UTF8.GetBytes(s);

    private static string S(byte[] b) => Encoding.UTF8.GetString(b);

    // ------------------------------------------------------------------ tasks

    [Fact]
    public async Task Tasks_CreateAndGet()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var created = At(0.5).ToOffset(TimeSpan.FromHours(-3));
        var task = new TaskInfo { Id = "t-1", ContentGuid = item.Guid, UserGuid = owner.Guid, Kind = "deploy", CreatedTime = created, Hostname = "node-a" };
        var bare = new TaskInfo { Id = "t-2", Kind = "restore", CreatedTime = T0 };

        await store.CreateTaskAsync(task);
        await store.CreateTaskAsync(bare);

        var read = await store.GetTaskAsync("t-1");
        Assert.Equal(task, read);
        AssertUtc(read!.CreatedTime, created);
        Assert.False(read.Finished);
        Assert.Equal(0, read.Code);
        Assert.Equal("", read.Error);
        Assert.Null(read.FinishedTime);
        Assert.Equal(bare, await store.GetTaskAsync("t-2"));
        Assert.Null(await store.GetTaskAsync("t-3"));
        Assert.Empty(await store.GetTaskOutputAsync("t-1", 0));
        Assert.Empty(await store.GetTaskOutputAsync("t-3", 0));
    }

    [Fact]
    public async Task Tasks_AppendIsIdempotentByLineNumber_AndReadsFromFirst()
    {
        var store = await StoreAsync();
        await store.CreateTaskAsync(new TaskInfo { Id = "t", Kind = "deploy", CreatedTime = T0 });
        await store.CreateTaskAsync(new TaskInfo { Id = "u", Kind = "deploy", CreatedTime = T0 });

        await store.AppendTaskOutputAsync("t", 0, ["zero", "one", "two"]);
        await store.AppendTaskOutputAsync("t", 0, ["zero", "one", "two"]); // a retried append
        await store.AppendTaskOutputAsync("t", 2, ["two", "three", "four"]); // overlapping
        await store.AppendTaskOutputAsync("t", 5, []);
        await store.AppendTaskOutputAsync("u", 0, ["other task"]);

        Assert.Equal(["zero", "one", "two", "three", "four"], await store.GetTaskOutputAsync("t", 0));
        Assert.Equal(["three", "four"], await store.GetTaskOutputAsync("t", 3));
        Assert.Equal(["four"], await store.GetTaskOutputAsync("t", 4));
        Assert.Empty(await store.GetTaskOutputAsync("t", 5));
        Assert.Equal(["other task"], await store.GetTaskOutputAsync("u", 0));

        await store.AppendTaskOutputAsync("t", 5, ["", "  indented ünïcode  "]);
        Assert.Equal(["", "  indented ünïcode  "], await store.GetTaskOutputAsync("t", 5));
        Assert.Equal(7, (await store.GetTaskOutputAsync("t", 0)).Count);
    }

    [Fact]
    public async Task Tasks_FinishSetsCodeErrorAndTime()
    {
        var store = await StoreAsync();
        var task = new TaskInfo { Id = "t", Kind = "deploy", CreatedTime = T0 };
        await store.CreateTaskAsync(task);
        var finished = At(12.345678).ToOffset(TimeSpan.FromHours(5.5));

        await store.FinishTaskAsync("t", 3, "build failed: exit 3", finished);

        var read = await store.GetTaskAsync("t");
        Assert.NotNull(read);
        Assert.True(read.Finished);
        Assert.Equal(3, read.Code);
        Assert.Equal("build failed: exit 3", read.Error);
        AssertUtc(read.FinishedTime, finished);
        Assert.Equal(task with { Finished = true, Code = 3, Error = "build failed: exit 3", FinishedTime = finished }, read);
    }

    [Fact]
    public async Task Tasks_InterruptedOnesOfAHostAreFinishedAsFailed()
    {
        var store = await StoreAsync();
        await store.CreateTaskAsync(new TaskInfo { Id = "a-running", Kind = "deploy", CreatedTime = T0, Hostname = "node-a" });
        await store.CreateTaskAsync(new TaskInfo { Id = "a-done", Kind = "deploy", CreatedTime = T0, Hostname = "node-a" });
        await store.FinishTaskAsync("a-done", 0, "", At(1));
        await store.CreateTaskAsync(new TaskInfo { Id = "b-running", Kind = "deploy", CreatedTime = T0, Hostname = "node-b" });

        Assert.Equal(1, await store.FinishInterruptedTasksAsync("node-a", "restarted", At(5)));

        var interrupted = (await store.GetTaskAsync("a-running"))!;
        Assert.True(interrupted.Finished);
        Assert.Equal(1, interrupted.Code);
        Assert.Equal("restarted", interrupted.Error);
        AssertUtc(interrupted.FinishedTime, At(5));
        var done = (await store.GetTaskAsync("a-done"))!;
        Assert.Equal(0, done.Code);
        AssertUtc(done.FinishedTime, At(1));
        Assert.False((await store.GetTaskAsync("b-running"))!.Finished);
        Assert.Equal(0, await store.FinishInterruptedTasksAsync("node-a", "restarted", At(6)));
    }

    // ------------------------------------------------------------------ jobs

    [Fact]
    public async Task Jobs_AddRoundTripsAndStartsActive()
    {
        var (store, _, item) = await ContentFixtureAsync();
        var bundle = await store.AddBundleAsync(new NewBundle(item.Guid, null, 1, "m", "s", T0));
        var start = At(1.000001).ToOffset(TimeSpan.FromHours(-8));

        var job = await store.AddJobAsync(new NewJob("k1", item.Guid, bundle.Id, 4242, "run_python_api", start, "node-a", "/var/log/k1.log"));
        var bare = await store.AddJobAsync(Job(item.Guid, "k2"));

        Assert.True(job.Id > 0);
        Assert.Equal("k1", job.Key);
        Assert.Equal(item.Guid, job.ContentGuid);
        Assert.Equal(bundle.Id, job.BundleId);
        Assert.Equal(4242, job.Pid);
        Assert.Equal("run_python_api", job.Tag);
        AssertUtc(job.StartTime, start);
        Assert.Null(job.EndTime);
        Assert.Null(job.ExitCode);
        Assert.Equal(JobStatus.Active, job.Status);
        Assert.Equal("node-a", job.Hostname);
        Assert.Equal("/var/log/k1.log", job.LogFile);
        Assert.Null(bare.BundleId);
        Assert.Null(bare.Pid);
        Assert.Null(bare.LogFile);

        Assert.Equal(job, await store.GetJobAsync(item.Guid, "k1"));
        Assert.Equal(bare, await store.GetJobAsync(item.Guid, "k2"));
    }

    [Fact]
    public async Task Jobs_SetPid()
    {
        var (store, _, item) = await ContentFixtureAsync();
        var job = await store.AddJobAsync(Job(item.Guid, "k"));
        var other = await store.AddJobAsync(Job(item.Guid, "other"));

        await store.SetJobPidAsync("k", 31337);

        Assert.Equal(job with { Pid = 31337 }, await store.GetJobAsync(item.Guid, "k"));
        Assert.Equal(other, await store.GetJobAsync(item.Guid, "other"));
    }

    [Fact]
    public async Task Jobs_FinishOnlyAffectsActiveJobs()
    {
        var (store, _, item) = await ContentFixtureAsync();
        var job = await store.AddJobAsync(Job(item.Guid, "k"));
        var killed = await store.AddJobAsync(Job(item.Guid, "killed"));
        var end = At(30.5).ToOffset(TimeSpan.FromHours(3));

        await store.FinishJobAsync("k", 0, end);
        await store.FinishJobAsync("killed", null, At(31));

        var finished = await store.GetJobAsync(item.Guid, "k");
        Assert.Equal(job with { Status = JobStatus.Finished, ExitCode = 0, EndTime = end }, finished);
        AssertUtc(finished!.EndTime, end);
        Assert.Equal(killed with { Status = JobStatus.Finished, ExitCode = null, EndTime = At(31) }, await store.GetJobAsync(item.Guid, "killed"));

        // A second finish (a late exit report) does not overwrite the first.
        await store.FinishJobAsync("k", 137, At(99));
        Assert.Equal(finished, await store.GetJobAsync(item.Guid, "k"));

        // Unknown keys are ignored.
        await store.FinishJobAsync("nope", 1, At(99));
    }

    [Fact]
    public async Task Jobs_ListAndGetByKey()
    {
        var (store, owner, item) = await ContentFixtureAsync();
        var other = await store.CreateContentAsync(Settings(owner, "other"), T0);
        var j1 = await store.AddJobAsync(Job(item.Guid, "j1", start: At(2)));
        var o1 = await store.AddJobAsync(Job(other.Guid, "o1"));
        var j2 = await store.AddJobAsync(Job(item.Guid, "j2", start: At(1)));

        Assert.Equal([j1, j2], await store.ListJobsAsync(item.Guid));
        Assert.Equal([o1], await store.ListJobsAsync(other.Guid));
        Assert.Empty(await store.ListJobsAsync(Guid.NewGuid()));
        Assert.Equal(j2, await store.GetJobAsync(item.Guid, "j2"));
        Assert.Null(await store.GetJobAsync(other.Guid, "j2"));
        Assert.Null(await store.GetJobAsync(item.Guid, "missing"));
    }

    [Fact]
    public async Task FinishOrphanedJobs_OnlyThatHostsActiveJobs()
    {
        var (store, _, item) = await ContentFixtureAsync();
        var a1 = await store.AddJobAsync(Job(item.Guid, "a1", "node-a"));
        var a2 = await store.AddJobAsync(Job(item.Guid, "a2", "node-a") with { Pid = 7 });
        var aDone = await store.AddJobAsync(Job(item.Guid, "a-done", "node-a"));
        await store.FinishJobAsync("a-done", 0, At(5));
        aDone = (await store.GetJobAsync(item.Guid, "a-done"))!;
        var b1 = await store.AddJobAsync(Job(item.Guid, "b1", "node-b"));
        var now = At(100).ToOffset(TimeSpan.FromHours(-1));

        Assert.Equal([a1, a2], await store.ListActiveJobsAsync("node-a"));
        Assert.Equal([b1], await store.ListActiveJobsAsync("node-b"));
        var count = await store.FinishOrphanedJobsAsync("node-a", now);
        Assert.Empty(await store.ListActiveJobsAsync("node-a"));

        Assert.Equal(2, count);
        Assert.Equal(a1 with { Status = JobStatus.Finished, EndTime = now }, await store.GetJobAsync(item.Guid, "a1"));
        Assert.Equal(a2 with { Status = JobStatus.Finished, EndTime = now }, await store.GetJobAsync(item.Guid, "a2"));
        Assert.Equal(aDone, await store.GetJobAsync(item.Guid, "a-done"));
        Assert.Equal(b1, await store.GetJobAsync(item.Guid, "b1"));
        AssertUtc((await store.GetJobAsync(item.Guid, "a1"))!.EndTime, now);

        Assert.Equal(0, await store.FinishOrphanedJobsAsync("node-a", At(200)));
        Assert.Equal(0, await store.FinishOrphanedJobsAsync("node-c", At(200)));
        Assert.Equal(1, await store.FinishOrphanedJobsAsync("node-b", At(200)));
    }

    // ------------------------------------------------------------------ nodes

    [Fact]
    public async Task Nodes_UpsertInserts_ThenReplacesEveryField()
    {
        var store = await StoreAsync();
        Assert.Empty(await store.ListNodesAsync());
        var started = At(1).ToOffset(TimeSpan.FromHours(2));
        var node = new NodeInfo("node-a", "10.0.0.1:11111@1", "http://10.0.0.1:5000", 3, 6_442_450_944, 1.0 / 3, false, started, At(2.000001));

        await store.UpsertNodeAsync(node);

        var read = Assert.Single(await store.ListNodesAsync());
        Assert.Equal(node, read);
        AssertUtc(read.StartedTime, started);
        AssertUtc(read.Heartbeat, At(2.000001));

        // The same name again (a heartbeat, or the node back after a restart): one row, every field the new one's.
        var restarted = new NodeInfo("node-a", "10.0.0.9:11112@2", "https://node-a.internal:5001", 0, long.MaxValue, 0.0, true, At(10), At(11));
        await store.UpsertNodeAsync(restarted);
        Assert.Equal([restarted], await store.ListNodesAsync());
        await store.UpsertNodeAsync(restarted with { Processes = 5, CpuLoad = 1.75, Draining = false, Heartbeat = At(12) });
        Assert.Equal([restarted with { Processes = 5, CpuLoad = 1.75, Draining = false, Heartbeat = At(12) }], await store.ListNodesAsync());
    }

    [Fact]
    public async Task Nodes_ListedByOrdinalName_AndDeletedOneByOne()
    {
        var store = await StoreAsync();
        NodeInfo Node(string name) => new(name, $"{name}:11111@1", $"http://{name}:5000", 1, 1024, 0.5, false, T0, At(1));
        foreach (var name in new[] { "node-b", "node-a", "Node-z", "node-c" })
        {
            await store.UpsertNodeAsync(Node(name));
        }

        Assert.Equal(["Node-z", "node-a", "node-b", "node-c"], (await store.ListNodesAsync()).Select(n => n.Name));

        Assert.True(await store.DeleteNodeAsync("node-b"));
        Assert.False(await store.DeleteNodeAsync("node-b"));
        Assert.False(await store.DeleteNodeAsync("NODE-A"));
        Assert.False(await store.DeleteNodeAsync("nowhere"));
        Assert.Equal([Node("Node-z"), Node("node-a"), Node("node-c")], await store.ListNodesAsync());
    }

    [Fact]
    public async Task Nodes_HeartbeatsFromSeveralNodesAtOnce_LeaveOneRowEach()
    {
        var store = await StoreAsync();
        var nodes = new List<ICatalogStore>();
        for (var i = 0; i < 4; i++)
        {
            nodes.Add(await OpenSameDatabaseAsync(store));
        }

        // Each node beats for its own row and, as a node that has just been restarted might, for a shared one.
        await Task.WhenAll(nodes.Select((node, i) => Task.Run(async () =>
        {
            for (var beat = 0; beat < 25; beat++)
            {
                await node.UpsertNodeAsync(new NodeInfo($"node-{i}", $"s{i}", $"http://n{i}", beat, beat, beat, false, T0, At(beat)));
                await node.UpsertNodeAsync(new NodeInfo("shared", $"s{i}", $"http://n{i}", beat, beat, beat, false, T0, At(beat)));
            }
        })));

        var listed = await (await OpenSameDatabaseAsync(store)).ListNodesAsync();
        Assert.Equal(["node-0", "node-1", "node-2", "node-3", "shared"], listed.Select(n => n.Name));
        Assert.All(listed.Take(4), (n, i) => Assert.Equal(new NodeInfo($"node-{i}", $"s{i}", $"http://n{i}", 24, 24, 24, false, T0, At(24)), n));
        Assert.Equal(24, listed[4].Processes);
    }

    // ------------------------------------------------------------------ times

    [Theory]
    [InlineData(0)]
    [InlineData(0.000001)]
    [InlineData(0.5)]
    [InlineData(59.999999)]
    public async Task Times_RoundTripAtSubSecondPrecisionInUtc(double offsetSeconds)
    {
        var store = await StoreAsync();
        var t = At(offsetSeconds).ToOffset(new TimeSpan(-9, -30, 0));

        var user = await store.CreateUserAsync(new NewUser("u", UserRoles.Publisher, t));
        var item = await store.CreateContentAsync(Settings(user, "c"), t);
        var bundle = await store.AddBundleAsync(new NewBundle(item.Guid, null, 1, "m", "s", t));
        await store.ActivateBundleAsync(item.Guid, new BundleActivation(bundle.Id, AppModes.Static, null, null, "", t), item.RowVersion);
        await store.CreateTaskAsync(new TaskInfo { Id = "t", Kind = "k", CreatedTime = t });
        await store.FinishTaskAsync("t", 0, "", t);
        await store.AddJobAsync(Job(item.Guid, "j", start: t));
        await store.FinishJobAsync("j", 0, t);
        var key = await store.CreateApiKeyAsync(user.Guid, "k", "hash");
        await store.RecordApiKeysUsedAsync([new("hash", t)]);

        var u = (await store.GetUserAsync(user.Guid))!;
        AssertUtc(u.CreatedTime, t);
        AssertUtc(u.UpdatedTime, t);
        var c = (await store.GetContentAsync(item.Guid))!;
        AssertUtc(c.CreatedTime, t);
        AssertUtc(c.LastDeployedTime, t);
        AssertUtc((await store.GetBundleAsync(item.Guid, bundle.Id))!.CreatedTime, t);
        var task = (await store.GetTaskAsync("t"))!;
        AssertUtc(task.CreatedTime, t);
        AssertUtc(task.FinishedTime, t);
        var job = (await store.GetJobAsync(item.Guid, "j"))!;
        AssertUtc(job.StartTime, t);
        AssertUtc(job.EndTime, t);
        var listed = Assert.Single(await store.ListApiKeysAsync(user.Guid));
        AssertUtc(listed.LastUsedTime, t);
        Assert.Equal(TimeSpan.Zero, listed.CreatedTime.Offset);
        Assert.Equal(key.CreatedTime, listed.CreatedTime);
    }
}
