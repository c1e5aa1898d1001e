using System.Net;
using System.Reflection;
using Connect.Data.Postgres;
using Connect.Server.Cluster;
using Connect.Server.Tests.Infrastructure;
using Connect.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using Orleans.Configuration;
using Orleans.Hosting;
using Orleans.Runtime.Membership;
using Orleans.Runtime.MembershipService;
using Orleans.Storage;
using Orleans.TestingHost;
using Xunit.Abstractions;

namespace Connect.Server.Tests.Cluster;

/// <summary>
/// Orleans' ADO.NET clustering, reminders and grain storage against our PostgreSQL schema, on a real server: the
/// providers' own code runs every query, so a wrong column name, parameter or version rule fails here.
/// </summary>
public sealed class OrleansPostgresTests(ITestOutputHelper output)
{
    private const string VictimSilo = "Silo_1";
    private const int Active = 3;
    private const int Dead = 6;

    /// <summary>Every key Orleans 10.4.2's three providers read from OrleansQuery (CleanupDefunctSiloEntryKey and DeleteStorageKey are optional to them).</summary>
    private static readonly string[] QueryKeys =
    [
        "GatewaysQueryKey", "MembershipReadRowKey", "MembershipReadAllKey", "InsertMembershipVersionKey", "UpdateIAmAlivetimeKey",
        "InsertMembershipKey", "UpdateMembershipKey", "DeleteMembershipTableEntriesKey", "CleanupDefunctSiloEntriesKey",
        "CleanupDefunctSiloEntryKey",
        "ReadReminderRowsKey", "ReadRangeRows1Key", "ReadRangeRows2Key", "ReadReminderRowKey", "UpsertReminderRowKey",
        "DeleteReminderRowKey", "DeleteReminderRowsKey",
        "WriteToStorageKey", "ReadFromStorageKey", "ClearStorageKey", "DeleteStorageKey",
    ];

    [Fact]
    public async Task Migrations_apply_twice_and_install_every_query_key()
    {
        var versions = OrleansPostgresSchema.Migrations.Select(m => m.Version).ToArray();
        Assert.Equal(Enumerable.Range(1, versions.Length), versions);

        var db = await FreshDatabaseAsync();
        await ExecAsync(db, "INSERT INTO orleans_reminders VALUES ('svc', 'g', 'r', now(), 60000, 1, 7)");
        await ApplyMigrationsAsync(db);

        var keys = await QueryAsync(db, "SELECT QueryKey FROM OrleansQuery", r => r.GetString(0));
        Assert.Equal(QueryKeys.Order(StringComparer.Ordinal), keys.Order(StringComparer.Ordinal));
        // Applying again is harmless to data, not only to the schema.
        Assert.Equal(7, await ScalarAsync<int>(db, "SELECT version FROM orleans_reminders WHERE service_id = 'svc'"));
    }

    /// <summary>The membership protocol driven through the provider itself: versioned inserts and updates, gateways, cleanup.</summary>
    [Fact]
    public async Task Membership_table_follows_the_version_protocol()
    {
        var db = await FreshDatabaseAsync();
        var table = await MembershipTableAsync(db, "cluster-a");

        var empty = await table.ReadAllAsync();
        Assert.Empty(empty.Members);
        Assert.Equal(0, empty.Version.Version);

        var first = Entry(11111, SiloStatus.Joining);
        Assert.True(await table.InsertRowAsync(first, empty.Version.Next()));
        // A second insert against the same table version is stale: the first one moved the version on.
        Assert.False(await table.InsertRowAsync(Entry(22222, SiloStatus.Joining), empty.Version.Next()));
        var afterInsert = await table.ReadAllAsync();
        Assert.Equal(1, afterInsert.Version.Version);
        Assert.False(await table.InsertRowAsync(first, afterInsert.Version.Next()));  // already there

        var row = Assert.Single((await table.ReadRowAsync(first.SiloAddress)).Members).Item1;
        Assert.Equal(first.SiloName, row.SiloName);
        Assert.Equal(first.HostName, row.HostName);
        Assert.Equal(first.ProxyPort, row.ProxyPort);
        Assert.Equal(SiloStatus.Joining, row.Status);
        Assert.Equal(first.StartTime, row.StartTime, TimeSpan.FromMilliseconds(1));

        var suspicion = Entry(33333, SiloStatus.Active).SiloAddress;
        var active = Entry(11111, SiloStatus.Active, suspectedBy: suspicion);
        Assert.False(await table.UpdateRowAsync(active, empty.Version.VersionEtag, empty.Version.Next()));
        Assert.True(await table.UpdateRowAsync(active, afterInsert.Version.VersionEtag, afterInsert.Version.Next()));
        var afterUpdate = await table.ReadRowAsync(first.SiloAddress);
        Assert.Equal(2, afterUpdate.Version.Version);
        row = Assert.Single(afterUpdate.Members).Item1;
        Assert.Equal(SiloStatus.Active, row.Status);
        Assert.Equal(suspicion, Assert.Single(row.SuspectTimes ?? []).Item1);

        // I-am-alive is a heartbeat, not a membership change: it leaves the version alone.
        var alive = Entry(11111, SiloStatus.Active);
        alive.IAmAliveTime = DateTime.UtcNow.AddMinutes(1);
        await table.UpdateIAmAliveAsync(alive);
        var afterHeartbeat = await table.ReadAllAsync();
        Assert.Equal(2, afterHeartbeat.Version.Version);
        Assert.Equal(alive.IAmAliveTime, Assert.Single(afterHeartbeat.Members).Item1.IAmAliveTime, TimeSpan.FromMilliseconds(1));

        var gateways = GatewayList(db, "cluster-a");
        await gateways.InitializeGatewayListProvider();
        var gateway = Assert.Single(await gateways.GetGateways());
        Assert.Equal(first.ProxyPort, gateway.Port);

        // Another cluster in the same database is invisible to this one.
        var other = await MembershipTableAsync(db, "cluster-b");
        Assert.Empty((await other.ReadAllAsync()).Members);
    }

    [Fact]
    public async Task Defunct_silo_cleanup_removes_only_long_dead_rows_with_either_query()
    {
        var db = await FreshDatabaseAsync();
        var table = await MembershipTableAsync(db, "cluster-a");
        var old = DateTime.UtcNow.AddHours(-2);
        // Its suspicion list has to survive the provider's read-compare-delete round trip (CleanupDefunctSiloEntryKey).
        await AddAsync(table, Entry(1, SiloStatus.Dead, suspectedBy: Entry(9, SiloStatus.Active).SiloAddress, startTime: old, iAmAlive: old));
        await AddAsync(table, Entry(2, SiloStatus.Active, startTime: old, iAmAlive: old));
        await AddAsync(table, Entry(3, SiloStatus.Dead, startTime: old, iAmAlive: DateTime.UtcNow));

        await table.CleanupDefunctSiloEntriesAsync(DateTimeOffset.UtcNow.AddHours(-1));
        Assert.Equal(new[] { 2, 3 }, (await table.ReadAllAsync()).Members.Select(m => m.Item1.SiloAddress.Endpoint.Port).Order());

        // Without the per-row query (an older schema) the provider falls back to the bulk one.
        await ExecAsync(db, "DELETE FROM OrleansQuery WHERE QueryKey = 'CleanupDefunctSiloEntryKey'");
        table = await MembershipTableAsync(db, "cluster-a");
        await AddAsync(table, Entry(4, SiloStatus.Dead, startTime: old, iAmAlive: old));
        await table.CleanupDefunctSiloEntriesAsync(DateTimeOffset.UtcNow.AddHours(-1));
        Assert.Equal(new[] { 2, 3 }, (await table.ReadAllAsync()).Members.Select(m => m.Item1.SiloAddress.Endpoint.Port).Order());

        await table.DeleteMembershipTableEntriesAsync("cluster-a");
        Assert.Equal(0L, await ScalarAsync<long>(db, "SELECT count(*) FROM orleans_membership"));
        Assert.Equal(0L, await ScalarAsync<long>(db, "SELECT count(*) FROM orleans_membership_version"));
    }

    [Fact]
    public async Task Two_silos_form_a_cluster_and_the_survivor_declares_a_killed_silo_dead()
    {
        var db = await FreshDatabaseAsync();
        // The victim reaches the database as a role of its own, so that its "crash" can take its database access too.
        var role = "victim_" + Guid.NewGuid().ToString("N")[..12];
        await ExecAsync(db, $"CREATE ROLE {role} LOGIN; GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}");
        var victimDb = new NpgsqlConnectionStringBuilder(db) { Username = role }.ConnectionString;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await using var cluster = await StartClusterAsync(db, silos: 2, siloName => siloName == VictimSilo ? victimDb : db);
        output.WriteLine($"deployed after {clock.Elapsed}");
        var clusterId = cluster.Options.ClusterId;

        var rows = await Eventually.WaitAsync(async () =>
        {
            var r = await MembersAsync(db, clusterId);
            return r.Count(m => m.Status == Active) == 2 ? r : null;
        }, TimeSpan.FromSeconds(60), "both silos active in orleans_membership");
        Assert.Equal(cluster.Silos.Select(s => s.SiloAddress.Endpoint.Port).Order(), rows.Select(r => r.Port).Order());
        // The client found a gateway through the table (GatewaysQueryKey) and reaches a grain.
        Assert.Equal("hello", await WriteAndReadAsync(cluster, Guid.NewGuid(), "hello"));

        var victim = cluster.Silos.Single(s => s.Name == VictimSilo);
        var survivor = cluster.Silos.Single(s => s.Name != VictimSilo);
        // KillSiloAsync stops the silo in-process, and a silo that is stopped, even ungracefully, writes its own Dead
        // status on the way out. A crashed node has no last words: cut the victim off from the database first, so the
        // only way its row turns Dead is the survivor's missed probes and vote. The victim would retry those writes for
        // MaxJoinAttemptTime (5 minutes) each, up to a minute: the silo holds its options object, so shorten it in place.
        await ExecAsync(db, $"ALTER ROLE {role} NOLOGIN; SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{role}'");
        victim.ServiceProvider.GetRequiredService<IOptions<ClusterMembershipOptions>>().Value.MaxJoinAttemptTime = TimeSpan.FromMilliseconds(500);
        clock.Restart();
        await cluster.KillSiloAsync(victim);
        output.WriteLine($"victim stopped after {clock.Elapsed}");

        var dead = await Eventually.WaitAsync(async () =>
            (await MembersAsync(db, clusterId)).SingleOrDefault(m => m.Port == victim.SiloAddress.Endpoint.Port && m.Status == Dead),
            TimeSpan.FromSeconds(30), "the killed silo marked Dead");
        output.WriteLine($"victim declared dead after {clock.Elapsed}");
        Assert.Contains(survivor.SiloAddress.ToParsableString(), dead.SuspectTimes ?? "");
        Assert.Equal(Active, (await MembersAsync(db, clusterId)).Single(m => m.Port == survivor.SiloAddress.Endpoint.Port).Status);
    }

    [Fact]
    public async Task Reminders_are_stored_fire_survive_deactivation_and_unregister()
    {
        var db = await FreshDatabaseAsync();
        await using var cluster = await StartClusterAsync(db, silos: 1);
        var id = Guid.NewGuid();
        var grain = cluster.Client.GetGrain<IReminderTestGrain>(id);

        await grain.Register("tick", TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2));
        var stored = await QueryAsync(db,
            "SELECT reminder_name, period FROM orleans_reminders WHERE service_id = @s AND grain_id = @g",
            r => (Name: r.GetString(0), Period: r.GetInt64(1)), ("s", cluster.Options.ServiceId), ("g", grain.GetGrainId().ToString()));
        Assert.Equal(("tick", 2000L), Assert.Single(stored));
        Assert.True(await grain.Has("tick"));
        Assert.Equal(new[] { "tick" }, await grain.List());

        // The hash ring's ranges, as the reminder service reads its share: (begin, end], wrapping when begin >= end.
        var reminders = cluster.Silos[0].ServiceProvider.GetRequiredService<IReminderTable>();
        var grainId = grain.GetGrainId();
        var hash = grainId.GetUniformHashCode();
        Assert.Single((await reminders.ReadRows(unchecked(hash - 1), hash)).Reminders);
        Assert.Empty((await reminders.ReadRows(hash, unchecked(hash + 1))).Reminders);
        Assert.Single((await reminders.ReadRows(unchecked(hash + 1), hash)).Reminders);
        Assert.Single((await reminders.ReadRows(hash, hash)).Reminders);
        Assert.Equal("tick", Assert.Single((await reminders.ReadRows(grainId)).Reminders).ReminderName);

        var firstTick = await Eventually.WaitAsync(() => Task.FromResult(ReminderTicks.Of(id).FirstOrDefault() is { Reminder: not null } t ? t.Activation : null),
            TimeSpan.FromSeconds(20), "the first reminder tick");

        await grain.Deactivate();
        await Eventually.WaitAsync(() => Task.FromResult(ReminderTicks.Of(id).Any(t => t.Activation != firstTick) ? "ticked" : null),
            TimeSpan.FromSeconds(20), "a tick that activates the grain again");
        Assert.True(await grain.Has("tick"));

        await grain.Unregister("tick");
        Assert.False(await grain.Has("tick"));
        Assert.Equal(0L, await ScalarAsync<long>(db, "SELECT count(*) FROM orleans_reminders"));
    }

    [Fact]
    public async Task Grain_state_round_trips_rejects_stale_writes_and_clears()
    {
        var db = await FreshDatabaseAsync();
        await using var cluster = await StartClusterAsync(db, silos: 1);
        var id = Guid.NewGuid();
        var grain = cluster.Client.GetGrain<IStateTestGrain>(id);

        Assert.Equal(new StateSnapshot(null, null, false), await grain.Get());
        await grain.Set("one");
        await grain.Deactivate();
        Assert.Equal(new StateSnapshot("one", "1", true), await grain.Get());
        await grain.Set("two");
        Assert.Equal(2, await ScalarAsync<int>(db, "SELECT version FROM orleans_storage"));

        // Another writer (say, a duplicate activation during a partition) moves the row on: this activation's ETag is stale.
        await ExecAsync(db, "UPDATE orleans_storage SET version = version + 1");
        await Assert.ThrowsAsync<InconsistentStateException>(() => grain.Set("three"));
        // Orleans drops the activation that hit the conflict; the next one reads what storage holds.
        Assert.Equal(new StateSnapshot("two", "3", true), await grain.Get());

        // A first write (no ETag) where a row already exists is stale too.
        var storage = cluster.Silos[0].ServiceProvider.GetRequiredKeyedService<IGrainStorage>(OrleansPostgres.StorageName);
        var fresh = new GrainState<TestState>(new TestState { Value = "rival" });
        await Assert.ThrowsAsync<InconsistentStateException>(() => storage.WriteStateAsync("s", grain.GetGrainId(), fresh));

        await grain.Clear();
        Assert.Equal(0L, await ScalarAsync<long>(db, "SELECT count(*) FROM orleans_storage"));
        Assert.Equal(new StateSnapshot(null, null, false), await grain.Get());
        await grain.Deactivate();
        Assert.Equal(new StateSnapshot(null, null, false), await grain.Get());
        await grain.Set("again");
        Assert.Equal(new StateSnapshot("again", "1", true), await grain.Get());
    }

    /// <summary>ClearStorageKey, which Connect's own storage (deleting on clear) does not use but Orleans requires.</summary>
    [Fact]
    public async Task Grain_state_cleared_without_delete_keeps_an_empty_versioned_row()
    {
        var db = await FreshDatabaseAsync();
        await using var cluster = await StartClusterAsync(db, silos: 1);
        var grain = cluster.Client.GetGrain<ITombstoneStateTestGrain>(Guid.NewGuid());

        await grain.Set("one");
        await grain.Clear();
        Assert.Equal(new StateSnapshot(null, "2", false), await grain.Get());
        Assert.Equal((true, 2), Assert.Single(await QueryAsync(db, "SELECT payload IS NULL, version FROM orleans_storage",
            r => (r.GetBoolean(0), r.GetInt32(1)))));
        await grain.Deactivate();
        Assert.Equal(new StateSnapshot(null, "2", false), await grain.Get());
        await grain.Set("two");
        Assert.Equal(new StateSnapshot("two", "3", true), await grain.Get());
    }

    /// <summary>Two grain types, one key, one state name: the ADO.NET provider alone would give them one row.</summary>
    [Fact]
    public async Task Grain_types_sharing_a_key_and_state_name_keep_separate_state()
    {
        var db = await FreshDatabaseAsync();
        await using var cluster = await StartClusterAsync(db, silos: 1);
        var id = Guid.NewGuid();
        var named = cluster.Client.GetGrain<IStateTestGrain>(id);
        var byDefault = cluster.Client.GetGrain<IOtherStateTestGrain>(id);

        await named.Set("mine");
        await byDefault.Set("theirs");
        await named.Deactivate();
        Assert.Equal("mine", (await named.Get()).Value);
        Assert.Equal("theirs", (await byDefault.Get()).Value);
        var types = await QueryAsync(db, "SELECT grain_type FROM orleans_storage", r => r.GetString(0));
        Assert.Equal(new[] { "s/otherstatetest", "s/statetest" }, types.Order(StringComparer.Ordinal));
    }

    private static async Task<string> WriteAndReadAsync(InProcessTestCluster cluster, Guid id, string value)
    {
        var grain = cluster.Client.GetGrain<IStateTestGrain>(id);
        await grain.Set(value);
        return (await grain.Get()).Value ?? "";
    }

    private static async Task<InProcessTestCluster> StartClusterAsync(string db, short silos, Func<string, string>? connectionFor = null)
    {
        var builder = new InProcessTestClusterBuilder(silos);
        builder.Options.ConfigureFileLogging = false;
        UseProviderMembership(builder.Options);
        builder.ConfigureSilo((options, silo) =>
        {
            silo.UseConnectPostgres(connectionFor?.Invoke(options.SiloName) ?? db);
            silo.AddAdoNetGrainStorage(TombstoneStateTestGrain.Storage, o =>
            {
                o.Invariant = OrleansPostgres.Invariant;
                o.ConnectionString = db;
            });
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
            });
            // Orleans 10 allows sub-minute reminders when asked (it logs a warning): ticks in seconds, not minutes.
            silo.Configure<ReminderOptions>(o => o.MinimumReminderPeriod = TimeSpan.FromSeconds(1));
        });
        builder.ConfigureClient(client => client.UseAdoNetClustering(o =>
        {
            o.Invariant = OrleansPostgres.Invariant;
            o.ConnectionString = db;
        }));
        var cluster = builder.Build();
        await cluster.DeployAsync();
        return cluster;
    }

    /// <summary>
    /// InProcessTestClusterBuilder gives every silo its in-memory membership table (and a grain directory that trusts it)
    /// after our configuration runs, so ours would lose. The switch is public on the classic TestClusterOptions but
    /// internal here; turning it off leaves membership, and the client's gateway list, to the providers under test.
    /// </summary>
    private static void UseProviderMembership(InProcessTestClusterOptions options)
    {
        var flag = typeof(InProcessTestClusterOptions).GetProperty("UseTestClusterMembership", BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic)
            ?? throw new InvalidOperationException("InProcessTestClusterOptions.UseTestClusterMembership is gone: find this Orleans version's way to bring your own membership");
        flag.SetValue(options, false);
    }

    private static async Task<AdoNetClusteringTable> MembershipTableAsync(string db, string clusterId)
    {
        var table = new AdoNetClusteringTable(
            new ServiceCollection().BuildServiceProvider(),
            Options.Create(new ClusterOptions { ClusterId = clusterId, ServiceId = "svc" }),
            Options.Create(new AdoNetClusteringSiloOptions { Invariant = OrleansPostgres.Invariant, ConnectionString = db }),
            NullLogger<AdoNetClusteringTable>.Instance);
        await table.InitializeMembershipTableAsync(tryInitTableVersion: true);
        return table;
    }

    private static AdoNetGatewayListProvider GatewayList(string db, string clusterId) => new(
        NullLogger<AdoNetGatewayListProvider>.Instance,
        new ServiceCollection().BuildServiceProvider(),
        Options.Create(new AdoNetClusteringClientOptions { Invariant = OrleansPostgres.Invariant, ConnectionString = db }),
        Options.Create(new GatewayOptions()),
        Options.Create(new ClusterOptions { ClusterId = clusterId, ServiceId = "svc" }));

    private static async Task AddAsync(AdoNetClusteringTable table, MembershipEntry entry)
    {
        var version = (await table.ReadAllAsync()).Version;
        Assert.True(await table.InsertRowAsync(entry, version.Next()));
        if (entry.SuspectTimes is not null)
        {
            // Suspicions arrive by update only, as in the protocol.
            version = (await table.ReadAllAsync()).Version;
            Assert.True(await table.UpdateRowAsync(entry, version.VersionEtag, version.Next()));
        }
    }

    private static MembershipEntry Entry(int port, SiloStatus status, SiloAddress? suspectedBy = null, DateTime? startTime = null, DateTime? iAmAlive = null)
    {
        var address = SiloAddress.New(IPAddress.Loopback, port, 42);
        return new MembershipEntry
        {
            SiloAddress = address,
            SiloName = $"silo-{port}",
            HostName = "node-a",
            Status = status,
            ProxyPort = port + 1,
            StartTime = startTime ?? DateTime.UtcNow,
            IAmAliveTime = iAmAlive ?? DateTime.UtcNow,
            SuspectTimes = suspectedBy is null ? null : [Tuple.Create(suspectedBy, iAmAlive ?? DateTime.UtcNow)],
        };
    }

    private sealed record MemberRow(int Port, int Status, string? SuspectTimes);

    private static Task<List<MemberRow>> MembersAsync(string db, string clusterId) => QueryAsync(db,
        "SELECT port, status, suspect_times FROM orleans_membership WHERE deployment_id = @c",
        r => new MemberRow(r.GetInt32(0), r.GetInt32(1), r.IsDBNull(2) ? null : r.GetString(2)), ("c", clusterId));

    private static async Task<string> FreshDatabaseAsync()
    {
        var server = await PostgresServer.SharedAsync();
        var db = await server.CreateDatabaseAsync("orleans");
        await ApplyMigrationsAsync(db);
        await ApplyMigrationsAsync(db);
        return db;
    }

    /// <summary>As a migration runner would: each migration in its own transaction.</summary>
    private static async Task ApplyMigrationsAsync(string db)
    {
        await using var connection = new NpgsqlConnection(db);
        await connection.OpenAsync();
        foreach (var (_, sql) in OrleansPostgresSchema.Migrations)
        {
            await using var tx = await connection.BeginTransactionAsync();
            await using var command = new NpgsqlCommand(sql, connection, tx);
            await command.ExecuteNonQueryAsync();
            await tx.CommitAsync();
        }
    }

    private static async Task ExecAsync(string db, string sql)
    {
        await using var connection = new NpgsqlConnection(db);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    private static async Task<T> ScalarAsync<T>(string db, string sql)
    {
        await using var connection = new NpgsqlConnection(db);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return (T)(await command.ExecuteScalarAsync())!;
    }

    private static async Task<List<T>> QueryAsync<T>(string db, string sql, Func<NpgsqlDataReader, T> read, params (string Name, object Value)[] parameters)
    {
        await using var connection = new NpgsqlConnection(db);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.AddWithValue(name, value);
        }
        await using var reader = await command.ExecuteReaderAsync();
        var rows = new List<T>();
        while (await reader.ReadAsync())
        {
            rows.Add(read(reader));
        }
        return rows;
    }
}
