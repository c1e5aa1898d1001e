using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.CompilerServices;
using Connect.Core.Model;
using Connect.Data.Postgres;
using Connect.Data.Security;
using Connect.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Connect.Data.Tests.Postgres;

/// <summary>The catalog contract against PostgreSQL: the shared throwaway server, one fresh database per store.</summary>
public sealed class PostgresCatalogStoreTests : CatalogStoreContract, IAsyncLifetime
{
    private readonly ConcurrentBag<PostgresCatalogStore> _opened = [];
    private readonly ConditionalWeakTable<ICatalogStore, string> _databases = new();
    private PostgresServer _server = null!;

    public async Task InitializeAsync() => _server = await PostgresServer.SharedAsync();

    public async Task DisposeAsync()
    {
        // Each store holds a pool of connections to the shared server: release them, or a long run exhausts its slots.
        foreach (var store in _opened)
        {
            await store.DisposeAsync();
        }
    }

    protected override async Task<ICatalogStore> CreateStoreAsync() => Open(await _server.CreateDatabaseAsync("catalog"));

    protected override Task<ICatalogStore> OpenSameDatabaseAsync(ICatalogStore store) =>
        Task.FromResult<ICatalogStore>(Open(_databases.TryGetValue(store, out var cs) ? cs : throw new ArgumentException("not a store of this fixture", nameof(store))));

    private PostgresCatalogStore Open(string connectionString)
    {
        var store = new PostgresCatalogStore(connectionString);
        _opened.Add(store);
        _databases.Add(store, connectionString);
        return store;
    }

    private static IReadOnlyList<(string Stream, IReadOnlyList<(int Version, string Sql)> Migrations)> AllStreams =>
        [(PostgresSchema.Stream, PostgresSchema.Migrations), (PostgresCatalogStore.OrleansStream, OrleansPostgresSchema.Migrations)];

    private static async Task<List<(string Stream, int Version, DateTime AppliedAt)>> HistoryAsync(string connectionString)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand("SELECT stream, version, applied_at FROM connect_schema_migrations ORDER BY stream, version", connection);
        await using var reader = await cmd.ExecuteReaderAsync();
        var rows = new List<(string, int, DateTime)>();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetString(0), reader.GetInt32(1), reader.GetDateTime(2)));
        }
        return rows;
    }

    private static async Task<T?> ScalarAsync<T>(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection);
        var value = await cmd.ExecuteScalarAsync();
        return value is DBNull ? default : (T?)value;
    }

    private static async Task ExecAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(sql, connection);
        await cmd.ExecuteNonQueryAsync();
    }

    private static IEnumerable<(string, int)> Expected =>
        AllStreams.SelectMany(s => s.Migrations.Select(m => (s.Stream, m.Version))).OrderBy(x => x.Item1, StringComparer.Ordinal).ThenBy(x => x.Item2);

    // ------------------------------------------------------------------ migrations

    [Fact]
    public async Task MigrateAsync_FromFourNodesAtOnce_AppliesAndRecordsEachMigrationOnce()
    {
        for (var round = 0; round < 3; round++)
        {
            var cs = await _server.CreateDatabaseAsync("race");
            var nodes = Enumerable.Range(0, 4).Select(_ => Open(cs)).ToList();
            var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);

            var runs = nodes.Select(n => Task.Run(async () =>
            {
                await gate.Task;
                await n.MigrateAsync();
            })).ToArray();
            gate.SetResult();
            await Task.WhenAll(runs);

            Assert.Equal(Expected, (await HistoryAsync(cs)).Select(r => (r.Stream, r.Version)));
            var user = await nodes[3].CreateUserAsync(new NewUser("after-race", UserRoles.Viewer, T0));
            Assert.Equal(user, await nodes[0].GetUserByNameAsync("AFTER-RACE"));
        }
    }

    [Fact]
    public async Task MigrateAsync_Again_ChangesNothing()
    {
        var store = await CreateStoreAsync();
        await store.MigrateAsync();
        var cs = _databases.TryGetValue(store, out var s) ? s : throw new InvalidOperationException();
        var first = await HistoryAsync(cs);

        await store.MigrateAsync();
        await (await OpenSameDatabaseAsync(store)).MigrateAsync();

        Assert.Equal(first, await HistoryAsync(cs));
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        Assert.Equal(0, await PostgresMigrator.RunAsync(connection, AllStreams, NullLogger.Instance, default));
        Assert.Equal(first, await HistoryAsync(cs));
    }

    [Fact]
    public async Task FailedMigration_LeavesNeitherItsChangesNorItsRecord_AndReleasesTheLock()
    {
        var cs = await _server.CreateDatabaseAsync("failing");
        IReadOnlyList<(int, string)> failing =
        [
            (1, "CREATE TABLE first_table (x integer)"),
            // Dollar quoting with semicolons inside: the statement splitter must leave the body whole.
            (2, "CREATE TABLE second_table (x integer); DO $$ BEGIN PERFORM 1; RAISE EXCEPTION 'boom; on purpose'; END $$;"),
        ];
        await using (var connection = new NpgsqlConnection(cs))
        {
            await connection.OpenAsync();
            var e = await Assert.ThrowsAsync<PostgresException>(() => PostgresMigrator.RunAsync(connection, [("test", failing)], NullLogger.Instance, default));
            Assert.Equal("boom; on purpose", e.MessageText);
            // The session is still open, yet another session can take the lock at once.
            await using var other = new NpgsqlConnection(cs);
            await other.OpenAsync();
            await using var tryLock = new NpgsqlCommand($"SELECT pg_try_advisory_lock({PostgresMigrator.LockKey}); ", other);
            Assert.True((bool)(await tryLock.ExecuteScalarAsync())!);
        }

        Assert.Equal([("test", 1)], (await HistoryAsync(cs)).Select(r => (r.Stream, r.Version)));
        Assert.Equal("first_table", await ScalarAsync<string>(cs, "SELECT to_regclass('first_table')::text"));
        Assert.Null(await ScalarAsync<string>(cs, "SELECT to_regclass('second_table')::text"));

        IReadOnlyList<(int, string)> fixedUp = [failing[0], (2, "CREATE TABLE second_table (x integer); DO $$ BEGIN PERFORM 1; END $$;")];
        await using (var connection = new NpgsqlConnection(cs))
        {
            await connection.OpenAsync();
            Assert.Equal(1, await PostgresMigrator.RunAsync(connection, [("test", fixedUp)], NullLogger.Instance, default));
        }
        Assert.Equal([("test", 1), ("test", 2)], (await HistoryAsync(cs)).Select(r => (r.Stream, r.Version)));
    }

    [Theory]
    [InlineData(new[] { 1, 1 })]
    [InlineData(new[] { 2, 1 })]
    [InlineData(new[] { 0 })]
    public async Task Migrations_OutOfOrder_AreRefusedBeforeAnythingRuns(int[] versions)
    {
        var cs = await _server.CreateDatabaseAsync("order");
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();

        await Assert.ThrowsAsync<InvalidOperationException>(() => PostgresMigrator.RunAsync(connection,
            [("test", versions.Select(v => (v, $"CREATE TABLE t{v}_{Guid.NewGuid():N} (x integer)")).ToList())], NullLogger.Instance, default));

        Assert.Null(await ScalarAsync<string>(cs, "SELECT to_regclass('connect_schema_migrations')::text"));
    }

    [Fact]
    public async Task MigrateAsync_FromCatalogVersion1_AddsTheNodeRegistry_AndKeepsData()
    {
        // A database left at the first catalog migration, holding a user and a key.
        var cs = await _server.CreateDatabaseAsync("upgrade");
        await using (var connection = new NpgsqlConnection(cs))
        {
            await connection.OpenAsync();
            await PostgresMigrator.RunAsync(connection, [(PostgresSchema.Stream, PostgresSchema.Migrations.Take(1).ToList())], NullLogger.Instance, default);
        }
        var userGuid = Guid.NewGuid();
        await ExecAsync(cs,
            $"INSERT INTO users (guid, username, user_role, created_time, updated_time) VALUES ('{userGuid}', 'old', 'publisher', '2024-01-01Z', '2024-01-01Z');" +
            $"INSERT INTO api_keys (user_guid, name, key_hash, created_time) VALUES ('{userGuid}', 'old-key', '{ApiKeys.Hash("old")}', '2024-01-01Z');");

        var store = Open(cs);
        await store.MigrateAsync();

        var holder = await store.FindUserByKeyHashAsync(ApiKeys.Hash("old"));
        Assert.Equal("old", holder?.User.Username);
        Assert.Equal(new DateTimeOffset(2024, 1, 1, 0, 0, 0, TimeSpan.Zero), holder!.User.CreatedTime);
        await store.UpsertNodeAsync(new NodeInfo("n", "s", "u", 0, 0, 0, false, T0, T0));
        Assert.Single(await store.ListNodesAsync());
        Assert.Equal(Expected, (await HistoryAsync(cs)).Select(r => (r.Stream, r.Version)));
    }

    [Fact]
    public async Task Schema_UsesNativeTypes()
    {
        var store = await CreateStoreAsync();
        await store.MigrateAsync();
        var cs = _databases.TryGetValue(store, out var s) ? s : throw new InvalidOperationException();
        await using var connection = new NpgsqlConnection(cs);
        await connection.OpenAsync();
        await using var cmd = new NpgsqlCommand(
            "SELECT table_name, column_name, data_type, is_identity FROM information_schema.columns " +
            "WHERE table_schema = current_schema() AND table_name <> 'connect_schema_migrations'", connection);
        var columns = new List<(string Table, string Column, string Type, bool Identity)>();
        await using (var reader = await cmd.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                columns.Add((reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3) == "YES"));
            }
        }

        Assert.NotEmpty(columns);
        Assert.All(columns.Where(c => c.Column.EndsWith("_time", StringComparison.Ordinal) || c.Column == "heartbeat"),
            c => Assert.Equal("timestamp with time zone", c.Type));
        Assert.All(columns.Where(c => c.Column == "guid" || c.Column.EndsWith("_guid", StringComparison.Ordinal) || c.Column == "created_by"),
            c => Assert.Equal("uuid", c.Type));
        Assert.Equal(["api_keys", "bundles", "content", "jobs", "users"],
            columns.Where(c => c.Identity).Select(c => c.Table).Order(StringComparer.Ordinal));
        Assert.All(columns.Where(c => c.Identity || c.Column == "bundle_id"), c => Assert.Equal("bigint", c.Type));
        Assert.DoesNotContain(columns, c => c.Type == "timestamp without time zone");
    }

    // ------------------------------------------------------------------ failing fast

    [Fact]
    public async Task MigrateAsync_NothingListening_FailsAtOnce_NamingWhere_NotThePassword()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }
        var store = Open($"Host=127.0.0.1;Port={port};Database=connect;Username=connect;Password=s3cret-do-not-print");
        var watch = Stopwatch.StartNew();

        var e = await Assert.ThrowsAsync<CatalogUnavailableException>(() => store.MigrateAsync());

        Assert.InRange(watch.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(5));
        Assert.Equal($"cannot reach the PostgreSQL catalog at 127.0.0.1:{port}/connect: connection refused", e.Message);
        Assert.DoesNotContain("s3cret", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MigrateAsync_ServerThatNeverAnswers_FailsWithinTheConnectTimeout()
    {
        // The kernel completes the handshake for the listener's backlog, so the client connects, sends its startup
        // message and waits for an answer that never comes: a hung server, or a firewall that swallows packets.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var port = ((IPEndPoint)silent.LocalEndpoint).Port;
        // Npgsql's own connect timeout is set far beyond ours: the store's must be the one that ends the wait.
        var store = Open($"Host=127.0.0.1;Port={port};Database=connect;Username=connect;Password=s3cret-do-not-print;Timeout=120");
        var watch = Stopwatch.StartNew();

        var e = await Assert.ThrowsAsync<CatalogUnavailableException>(() => store.MigrateAsync());

        Assert.InRange(watch.Elapsed, PostgresCatalogStore.ConnectTimeout - TimeSpan.FromSeconds(1), PostgresCatalogStore.ConnectTimeout + TimeSpan.FromSeconds(3));
        Assert.Equal($"cannot reach the PostgreSQL catalog at 127.0.0.1:{port}/connect: no answer within {PostgresCatalogStore.ConnectTimeout.TotalSeconds:0} s", e.Message);
        Assert.DoesNotContain("s3cret", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MigrateAsync_UnknownHost_SaysSo()
    {
        var store = Open("Host=no-such-host.invalid;Port=5432;Database=connect;Username=connect;Password=s3cret-do-not-print");

        var e = await Assert.ThrowsAsync<CatalogUnavailableException>(() => store.MigrateAsync());

        Assert.StartsWith("cannot reach the PostgreSQL catalog at no-such-host.invalid:5432/connect: ", e.Message, StringComparison.Ordinal);
        Assert.DoesNotContain("s3cret", e.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task MigrateAsync_MissingDatabase_SaysSo()
    {
        var cs = new NpgsqlConnectionStringBuilder(_server.AdminConnectionString) { Database = "no_such_catalog", Password = "s3cret-do-not-print" };
        var store = Open(cs.ConnectionString);

        var e = await Assert.ThrowsAsync<CatalogUnavailableException>(() => store.MigrateAsync());

        Assert.Equal($"cannot reach the PostgreSQL catalog at 127.0.0.1:{_server.Port}/no_such_catalog: database \"no_such_catalog\" does not exist", e.Message);
        Assert.DoesNotContain("s3cret", e.ToString(), StringComparison.Ordinal);
    }
}
