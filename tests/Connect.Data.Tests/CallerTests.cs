using Connect.Core.Model;
using Connect.Data.Security;
using Connect.Data.Sqlite;
using Microsoft.AspNetCore.Http;
using Microsoft.Data.Sqlite;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;
using Connect.Core.Hosting;

namespace Connect.Data.Tests;

public sealed class CallerTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("connect-caller-tests-").FullName;

    private sealed class FixedTime(DateTimeOffset now) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => now;
    }

    private static ServiceProvider Services(ICatalogStore store, DateTimeOffset now) => new ServiceCollection()
        .AddSingleton(store)
        .AddSingleton<TimeProvider>(new FixedTime(now))
        .AddSingleton(Options.Create(new ConnectOptions()))
        .AddLogging()
        .AddSingleton<ApiKeyCache>()
        .AddSingleton<ApiKeyUsage>()
        .BuildServiceProvider();

    private static HttpRequest Request(string header, string value)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers[header] = value;
        return context.Request;
    }

    [Theory]
    [InlineData("Authorization", "Key abc123", "abc123")]
    [InlineData("Authorization", "key abc123", "abc123")]
    [InlineData("Authorization", "KEY   abc123  ", "abc123")]
    [InlineData("X-RSC-Authorization", "Key abc123", "abc123")]
    [InlineData("Authorization", "Bearer abc123", null)]
    [InlineData("Authorization", "Key ", null)]
    [InlineData("Authorization", "Key    ", null)]
    [InlineData("Authorization", "abc123", null)]
    [InlineData("X-Other", "Key abc123", null)]
    public void ReadKey(string header, string value, string? expected)
    {
        Assert.Equal(expected, Caller.ReadKey(Request(header, value)));
    }

    [Fact]
    public void ReadKey_NoHeader_IsNull()
    {
        Assert.Null(Caller.ReadKey(new DefaultHttpContext().Request));
    }

    [Fact]
    public async Task GetAsync_ResolvesTheKeysUser_MarksItUsed_AndCachesPerRequest()
    {
        var now = new DateTimeOffset(2025, 1, 2, 3, 4, 5, TimeSpan.Zero);
        var store = new SqliteCatalogStore(Path.Combine(_root, "c.db"));
        await store.MigrateAsync();
        var key = ApiKeys.Generate();
        var admin = await store.BootstrapAdministratorAsync(new NewUser("admin", UserRoles.Administrator, now), "k", ApiKeys.Hash(key));
        var services = Services(store, now);

        HttpContext Context(string? authorization)
        {
            var context = new DefaultHttpContext { RequestServices = services };
            if (authorization is not null)
            {
                context.Request.Headers.Authorization = authorization;
            }
            return context;
        }

        var context = Context($"Key {key}");
        var caller = await Caller.GetAsync(context);
        Assert.Equal(admin, caller.User);
        Assert.False(caller.InvalidKey);
        Assert.Same(caller, await Caller.GetAsync(context));
        // The use is recorded in memory and reaches the catalog with the next flush.
        Assert.Null(Assert.Single(await store.ListApiKeysAsync(admin!.Guid)).LastUsedTime);
        await services.GetRequiredService<ApiKeyUsage>().FlushAsync();
        Assert.Equal(now, Assert.Single(await store.ListApiKeysAsync(admin.Guid)).LastUsedTime);

        var wrong = await Caller.GetAsync(Context($"Key {ApiKeys.Generate()}"));
        Assert.Null(wrong.User);
        Assert.True(wrong.InvalidKey);

        var anonymous = await Caller.GetAsync(Context(null));
        Assert.Null(anonymous.User);
        Assert.False(anonymous.InvalidKey);
    }

    [Fact]
    public async Task GetAsync_ScopedKey_CarriesItsContent_AndIsNobodyForOtherItems()
    {
        var store = new SqliteCatalogStore(Path.Combine(_root, "s.db"));
        await store.MigrateAsync();
        var now = DateTimeOffset.UtcNow;
        var owner = await store.CreateUserAsync(new NewUser("owner", UserRoles.Publisher, now));
        var own = await store.CreateContentAsync(new ContentSettings { Name = "own", OwnerGuid = owner.Guid, AccessType = "acl" }, now);
        var other = await store.CreateContentAsync(new ContentSettings { Name = "other", OwnerGuid = owner.Guid, AccessType = "logged_in" }, now);
        var key = ApiKeys.Generate();
        await store.CreateApiKeyAsync(owner.Guid, ApiKeys.ProcessKeyName("j"), ApiKeys.Hash(key), own.Guid);
        var services = Services(store, now);
        var context = new DefaultHttpContext { RequestServices = services };
        context.Request.Headers.Authorization = $"Key {key}";

        var caller = await Caller.GetAsync(context);

        Assert.Equal(owner, caller.User);
        Assert.Equal(own.Guid, caller.ScopedContent);
        Assert.Equal(owner, caller.UserFor(own));
        Assert.Null(caller.UserFor(other));
    }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
