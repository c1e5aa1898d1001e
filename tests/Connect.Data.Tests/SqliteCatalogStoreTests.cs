using System.Runtime.CompilerServices;
using Connect.Core.Model;
using Connect.Data.Security;
using Connect.Data.Sqlite;
using Microsoft.Data.Sqlite;

namespace Connect.Data.Tests;

/// <summary>The catalog contract against the embedded SQLite store: one fresh database file per store, in a temp directory.</summary>
public sealed class SqliteCatalogStoreTests : CatalogStoreContract, IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("connect-data-tests-").FullName;
    private readonly ConditionalWeakTable<ICatalogStore, string> _paths = new();
    private int _count;

    protected override Task<ICatalogStore> CreateStoreAsync() =>
        Task.FromResult(Open(Path.Combine(_root, $"catalog-{Interlocked.Increment(ref _count)}.db")));

    protected override Task<ICatalogStore> OpenSameDatabaseAsync(ICatalogStore store) =>
        Task.FromResult(Open(_paths.TryGetValue(store, out var path) ? path : throw new ArgumentException("not a store of this fixture", nameof(store))));

    private ICatalogStore Open(string path)
    {
        var store = new SqliteCatalogStore(path);
        _paths.Add(store, path);
        return store;
    }

    [Fact]
    public async Task MigrateAsync_CreatesTheFile_AndRecordsEachMigrationOnce()
    {
        var path = Path.Combine(_root, "explicit.db");
        Assert.False(File.Exists(path));

        await new SqliteCatalogStore(path).MigrateAsync();
        await new SqliteCatalogStore(path).MigrateAsync();
        await new SqliteCatalogStore(path).MigrateAsync();

        Assert.True(File.Exists(path));
        await using var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        await connection.OpenAsync();
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "SELECT COUNT(*), COUNT(DISTINCT version) FROM schema_migrations";
        await using var reader = await cmd.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync());
        Assert.True(reader.GetInt64(0) >= 1);
        Assert.Equal(reader.GetInt64(0), reader.GetInt64(1));
        await reader.DisposeAsync();

        cmd.CommandText = "PRAGMA journal_mode";
        Assert.Equal("wal", (string?)await cmd.ExecuteScalarAsync());
    }

    [Fact]
    public async Task MigrateAsync_FromSchemaBeforeKeyScopes_KeepsKeysUnscoped_AndAcceptsScopedOnes()
    {
        // A catalog written by a release that stopped at migration 3 (before api_keys.content_guid).
        var path = Path.Combine(_root, "v3.db");
        var userGuid = Guid.NewGuid();
        await using (var connection = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString()))
        {
            await connection.OpenAsync();
            await using var cmd = connection.CreateCommand();
            cmd.CommandText = "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, applied_time TEXT NOT NULL);" +
                string.Concat(SqliteSchema.Migrations.Where(m => m.Version <= 3).Select(m =>
                    m.Sql + $";INSERT INTO schema_migrations VALUES ({m.Version}, '2024-01-01T00:00:00Z');")) +
                $"INSERT INTO users (guid, username, user_role, created_time, updated_time) VALUES ('{userGuid}', 'old', 'publisher', '2024-01-01T00:00:00Z', '2024-01-01T00:00:00Z');" +
                $"INSERT INTO api_keys (user_guid, name, key_hash, created_time) VALUES ('{userGuid}', 'old-key', '{ApiKeys.Hash("old")}', '2024-01-01T00:00:00Z');";
            await cmd.ExecuteNonQueryAsync();
        }

        var store = new SqliteCatalogStore(path);
        await store.MigrateAsync();

        var holder = await store.FindUserByKeyHashAsync(ApiKeys.Hash("old"));
        Assert.Equal("old", holder?.User.Username);
        Assert.Null(holder!.ContentScope);
        var item = await store.CreateContentAsync(new ContentSettings { Name = "app", OwnerGuid = userGuid }, DateTimeOffset.UtcNow);
        await store.CreateApiKeyAsync(userGuid, "process", ApiKeys.Hash("new"), item.Guid);
        Assert.Equal(item.Guid, (await store.FindUserByKeyHashAsync(ApiKeys.Hash("new")))?.ContentScope);
        Assert.Equal([null, item.Guid], (await store.ListApiKeysAsync(userGuid)).Select(k => k.ContentScope));
    }

    public void Dispose()
    {
        // Pooled connections keep the files open; release them before removing the directory.
        SqliteConnection.ClearAllPools();
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
