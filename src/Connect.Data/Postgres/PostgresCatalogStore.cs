using System.Net.Sockets;
using Connect.Core.Model;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace Connect.Data.Postgres;

/// <summary>
/// The catalog of cluster mode: one PostgreSQL database shared by every node, through one pooled
/// <see cref="NpgsqlDataSource"/>. Same contract as the SQLite store; where SQLite serialises writers with its one write
/// lock, this store relies on constraints (unique violations become <see cref="CatalogConflictException"/>), row-version
/// predicates and, for the one check-then-insert, a table lock.
/// </summary>
public sealed partial class PostgresCatalogStore : ICatalogStore, IAsyncDisposable, IDisposable
{
    /// <summary>Name of the stream <see cref="MigrateAsync"/> applies after the catalog's: Orleans' tables and queries.</summary>
    public const string OrleansStream = "orleans";

    /// <summary>How long <see cref="MigrateAsync"/> tries to reach the server before it reports the catalog unavailable.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(8);

    private readonly NpgsqlDataSource _db;
    private readonly bool _ownsDataSource;
    private readonly ILogger _logger;
    private readonly string _where;

    /// <summary>A store with its own data source over <paramref name="connectionString"/>, disposed with the store.</summary>
    public PostgresCatalogStore(string connectionString, ILogger<PostgresCatalogStore>? logger = null)
        : this(CreateDataSource(connectionString), ownsDataSource: true, logger)
    {
    }

    /// <summary>A store over a data source the caller owns (and may share, e.g. with the Orleans providers).</summary>
    public PostgresCatalogStore(NpgsqlDataSource dataSource, ILogger<PostgresCatalogStore>? logger = null)
        : this(dataSource, ownsDataSource: false, logger)
    {
    }

    private PostgresCatalogStore(NpgsqlDataSource dataSource, bool ownsDataSource, ILogger? logger)
    {
        _db = dataSource;
        _ownsDataSource = ownsDataSource;
        _logger = logger ?? NullLogger.Instance;
        // Only where the server is: the data source's connection string has no password, and neither must our messages.
        var where = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        _where = $"{where.Host}:{where.Port}/{where.Database ?? where.Username}";
    }

    private static NpgsqlDataSource CreateDataSource(string connectionString)
    {
        var builder = new NpgsqlDataSourceBuilder(connectionString);
        var settings = builder.ConnectionStringBuilder;
        // The same few statements run all day (key lookups, content reads, node heartbeats): prepared after a few uses,
        // they skip parsing and planning. Every statement names its columns, so a later migration cannot break a plan.
        if (settings.MaxAutoPrepare == 0)
        {
            settings.MaxAutoPrepare = 64;
        }
        settings.ApplicationName ??= "connect";
        return builder.Build();
    }

    public ValueTask DisposeAsync() => _ownsDataSource ? _db.DisposeAsync() : ValueTask.CompletedTask;

    public void Dispose()
    {
        if (_ownsDataSource)
        {
            _db.Dispose();
        }
    }

    // ---------------------------------------------------------------- migrations

    public async Task MigrateAsync(CancellationToken ct = default)
    {
        await using var connection = await OpenForMigrationAsync(ct);
        await PostgresMigrator.RunAsync(connection,
            [(PostgresSchema.Stream, PostgresSchema.Migrations), (OrleansStream, OrleansPostgresSchema.Migrations)], _logger, ct);
    }

    /// <summary>
    /// The first connection a node makes: a server that is down, unreachable or missing the database fails here, within
    /// <see cref="ConnectTimeout"/> and with a message that says where, rather than as a pool or socket error much later.
    /// </summary>
    private async Task<NpgsqlConnection> OpenForMigrationAsync(CancellationToken ct)
    {
        // Npgsql honours cancellation while it connects the socket, but once connected it waits for the server's
        // startup answer until its own Timeout (15 s by default, whatever the operator set): a hung server or a
        // swallowing firewall would hold us that long. So the wait is bounded here, and an attempt that succeeds
        // after we gave up is closed when it does.
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(ConnectTimeout);
        var open = _db.OpenConnectionAsync(timeout.Token).AsTask();
        try
        {
            return await open.WaitAsync(ConnectTimeout, ct);
        }
        catch (Exception e) when (!ct.IsCancellationRequested && e is NpgsqlException or SocketException or TimeoutException or OperationCanceledException)
        {
            if (!open.IsCompleted)
            {
                _ = open.ContinueWith(late =>
                {
                    if (late.IsCompletedSuccessfully)
                    {
                        late.Result.Dispose();
                    }
                    return late.Exception;
                }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
            }
            var reason = Reason(e) ?? $"no answer within {ConnectTimeout.TotalSeconds:0} s";
            LogUnavailable(_logger, _where, reason);
            throw new CatalogUnavailableException($"cannot reach the PostgreSQL catalog at {_where}: {reason}", e);
        }
    }

    private static string? Reason(Exception e)
    {
        for (Exception? x = e; x is not null; x = x.InnerException)
        {
            switch (x)
            {
                case PostgresException { SqlState: PostgresErrorCodes.InvalidCatalogName } p:
                    return p.MessageText;
                case PostgresException { SqlState: PostgresErrorCodes.InvalidPassword or PostgresErrorCodes.InvalidAuthorizationSpecification } p:
                    return "authentication failed: " + p.MessageText;
                case PostgresException p:
                    return p.MessageText;
                case SocketException { SocketErrorCode: SocketError.ConnectionRefused }:
                    return "connection refused";
                case SocketException { SocketErrorCode: SocketError.HostNotFound or SocketError.TryAgain or SocketError.NoData }:
                    return "host not found";
                case SocketException { SocketErrorCode: SocketError.TimedOut }:
                case TimeoutException:
                case OperationCanceledException:
                    return null;
                case SocketException s:
                    return s.Message;
            }
        }
        return e.Message;
    }

    // ---------------------------------------------------------------- users and keys

    private const string UserColumns = "id, guid, username, email, first_name, last_name, user_role, created_time, updated_time, active_time, locked, confirmed";

    private static UserInfo ReadUser(NpgsqlDataReader r) => new()
    {
        Id = r.GetInt64(0),
        Guid = r.GetGuid(1),
        Username = r.GetString(2),
        Email = r.GetString(3),
        FirstName = r.GetString(4),
        LastName = r.GetString(5),
        Role = r.GetString(6),
        CreatedTime = Time(r, 7),
        UpdatedTime = Time(r, 8),
        ActiveTime = NTime(r, 9),
        Locked = r.GetBoolean(10),
        Confirmed = r.GetBoolean(11),
    };

    public async Task<int> CountUsersAsync(CancellationToken ct = default) =>
        (int)(await ScalarAsync<long>(null, "SELECT count(*) FROM users", ct));

    public async Task<UserInfo> CreateUserAsync(NewUser user, CancellationToken ct = default)
    {
        try
        {
            return await InsertUserAsync(null, user, ct);
        }
        catch (PostgresException e) when (IsUniqueViolation(e, "users_username_lower"))
        {
            throw new CatalogConflictException($"a user named '{user.Username}' already exists");
        }
    }

    private Task<UserInfo> InsertUserAsync(NpgsqlConnection? c, NewUser user, CancellationToken ct) =>
        SingleAsync(c,
            "INSERT INTO users (guid, username, email, first_name, last_name, user_role, created_time, updated_time) " +
            $"VALUES (@g, @u, @e, @f, @l, @r, @t, @t) RETURNING {UserColumns}", ReadUser, ct,
            ("g", Guid.NewGuid()), ("u", user.Username), ("e", user.Email), ("f", user.FirstName), ("l", user.LastName),
            ("r", user.Role), ("t", user.Now));

    public async Task<UserInfo?> GetUserAsync(Guid guid, CancellationToken ct = default) =>
        (await QueryAsync(null, $"SELECT {UserColumns} FROM users WHERE guid = @g", ReadUser, ct, ("g", guid))).FirstOrDefault();

    public async Task<UserInfo?> GetUserByNameAsync(string username, CancellationToken ct = default) =>
        // The same expression as the unique index, so the lookup uses it.
        (await QueryAsync(null, $"SELECT {UserColumns} FROM users WHERE lower(username) = lower(@u)", ReadUser, ct, ("u", username))).FirstOrDefault();

    public async Task<IReadOnlyList<UserInfo>> ListUsersAsync(CancellationToken ct = default) =>
        await QueryAsync(null, $"SELECT {UserColumns} FROM users ORDER BY id", ReadUser, ct);

    private const string KeyColumns = "id, user_guid, name, created_time, last_used_time, content_guid";

    private static ApiKeyInfo ReadKey(NpgsqlDataReader r) =>
        new(r.GetInt64(0), r.GetGuid(1), r.GetString(2), Time(r, 3), NTime(r, 4), r.IsDBNull(5) ? null : r.GetGuid(5));

    public Task<ApiKeyInfo> CreateApiKeyAsync(Guid userGuid, string name, string keyHash, Guid? contentScope = null, CancellationToken ct = default) =>
        InsertKeyAsync(null, userGuid, name, keyHash, DateTimeOffset.UtcNow, contentScope, ct);

    private Task<ApiKeyInfo> InsertKeyAsync(NpgsqlConnection? c, Guid userGuid, string name, string keyHash, DateTimeOffset now, Guid? contentScope, CancellationToken ct) =>
        SingleAsync(c,
            $"INSERT INTO api_keys (user_guid, name, key_hash, created_time, content_guid) VALUES (@u, @n, @h, @t, @c) RETURNING {KeyColumns}",
            ReadKey, ct, ("u", userGuid), ("n", name), ("h", keyHash), ("t", now), ("c", contentScope));

    public async Task<IReadOnlyList<ApiKeyInfo>> ListApiKeysAsync(Guid userGuid, CancellationToken ct = default) =>
        await QueryAsync(null, $"SELECT {KeyColumns} FROM api_keys WHERE user_guid = @u ORDER BY id", ReadKey, ct, ("u", userGuid));

    public async Task<bool> DeleteApiKeyAsync(Guid userGuid, long keyId, CancellationToken ct = default) =>
        await ExecAsync(null, "DELETE FROM api_keys WHERE id = @i AND user_guid = @u", ct, ("i", keyId), ("u", userGuid)) > 0;

    public Task<int> DeleteApiKeysNamedAsync(string name, CancellationToken ct = default) =>
        ExecAsync(null, "DELETE FROM api_keys WHERE name = @n", ct, ("n", name));

    private static readonly string KeyHolderQuery =
        $"SELECT {string.Join(", ", UserColumns.Split(", ").Select(col => "u." + col))}, k.content_guid " +
        "FROM api_keys k JOIN users u ON u.guid = k.user_guid WHERE k.key_hash = @h";

    public async Task<ApiKeyHolder?> FindUserByKeyHashAsync(string keyHash, CancellationToken ct = default) =>
        (await QueryAsync(null, KeyHolderQuery, r => new ApiKeyHolder(ReadUser(r), r.IsDBNull(12) ? null : r.GetGuid(12)), ct, ("h", keyHash))).FirstOrDefault();

    public async Task RecordApiKeysUsedAsync(IReadOnlyCollection<KeyValuePair<string, DateTimeOffset>> lastUsed, CancellationToken ct = default)
    {
        if (lastUsed.Count == 0)
        {
            return;
        }
        // The whole batch in one statement; a hash listed twice counts once, at its latest time. A mark only moves
        // forward, so a batch another node flushes late changes nothing it should not.
        await ExecAsync(null,
            "UPDATE api_keys k SET last_used_time = v.t " +
            "FROM (SELECT h, max(t) AS t FROM unnest(@hashes::text[], @times::timestamptz[]) AS x(h, t) GROUP BY h) v " +
            "WHERE k.key_hash = v.h AND (k.last_used_time IS NULL OR k.last_used_time < v.t)", ct,
            ("hashes", lastUsed.Select(p => p.Key).ToArray()), ("times", lastUsed.Select(p => p.Value.ToUniversalTime()).ToArray()));
    }

    public async Task<UserInfo?> SetUserLockedAsync(Guid guid, bool locked, DateTimeOffset now, CancellationToken ct = default) =>
        (await QueryAsync(null, $"UPDATE users SET locked = @l, updated_time = @t WHERE guid = @g RETURNING {UserColumns}",
            ReadUser, ct, ("l", locked), ("t", now), ("g", guid))).FirstOrDefault();

    public async Task<UserInfo?> BootstrapAdministratorAsync(NewUser admin, string keyName, string keyHash, CancellationToken ct = default)
    {
        await using var c = await _db.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        // "No user yet" must still hold when the insert commits: this mode excludes other writers of users (and other
        // bootstraps) until then, while readers carry on. Bootstrap happens once per installation.
        await ExecAsync(c, "LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE", ct);
        if (await ScalarAsync<bool>(c, "SELECT EXISTS (SELECT 1 FROM users)", ct))
        {
            return null;
        }
        var user = await InsertUserAsync(c, admin, ct);
        await InsertKeyAsync(c, user.Guid, keyName, keyHash, admin.Now, null, ct);
        await tx.CommitAsync(ct);
        return user;
    }

    // ---------------------------------------------------------------- content

    private const string ContentColumns =
        "id, guid, name, title, description, access_type, locked, locked_message, connection_timeout, read_timeout, init_timeout, " +
        "idle_timeout, max_processes, min_processes, max_conns_per_process, load_factor, owner_guid, created_time, last_deployed_time, " +
        "bundle_id, app_mode, content_category, py_version, entrypoint, row_version";

    private static int? NInt(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);

    private static string? NStr(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private static ContentItem ReadContent(NpgsqlDataReader r) => new()
    {
        Id = r.GetInt64(0),
        Guid = r.GetGuid(1),
        Settings = new ContentSettings
        {
            Name = r.GetString(2),
            Title = r.GetString(3),
            Description = r.GetString(4),
            AccessType = r.GetString(5),
            Locked = r.GetBoolean(6),
            LockedMessage = r.GetString(7),
            Runtime = new RuntimeSettings
            {
                ConnectionTimeout = NInt(r, 8),
                ReadTimeout = NInt(r, 9),
                InitTimeout = NInt(r, 10),
                IdleTimeout = NInt(r, 11),
                MaxProcesses = NInt(r, 12),
                MinProcesses = NInt(r, 13),
                MaxConnsPerProcess = NInt(r, 14),
                LoadFactor = r.IsDBNull(15) ? null : r.GetDouble(15),
            },
            OwnerGuid = r.GetGuid(16),
        },
        CreatedTime = Time(r, 17),
        LastDeployedTime = NTime(r, 18),
        BundleId = r.IsDBNull(19) ? null : r.GetInt64(19),
        AppMode = r.GetString(20),
        ContentCategory = r.GetString(21),
        PyVersion = NStr(r, 22),
        Entrypoint = NStr(r, 23),
        RowVersion = r.GetInt64(24),
    };

    private static IEnumerable<(string, object?)> SettingsParameters(ContentSettings s) =>
    [
        ("name", s.Name), ("title", s.Title), ("description", s.Description), ("access", s.AccessType),
        ("locked", s.Locked), ("lockedmsg", s.LockedMessage),
        ("ct", s.Runtime.ConnectionTimeout), ("rt", s.Runtime.ReadTimeout), ("it", s.Runtime.InitTimeout),
        ("idle", s.Runtime.IdleTimeout), ("maxp", s.Runtime.MaxProcesses), ("minp", s.Runtime.MinProcesses),
        ("mcpp", s.Runtime.MaxConnsPerProcess), ("lf", s.Runtime.LoadFactor), ("owner", s.OwnerGuid),
    ];

    private static CatalogConflictException NameTaken(ContentSettings s) => new($"content named '{s.Name}' already exists for this owner");

    public async Task<ContentItem> CreateContentAsync(ContentSettings settings, DateTimeOffset now, CancellationToken ct = default)
    {
        try
        {
            return await SingleAsync(null,
                "INSERT INTO content (guid, name, title, description, access_type, locked, locked_message, connection_timeout, read_timeout, " +
                "init_timeout, idle_timeout, max_processes, min_processes, max_conns_per_process, load_factor, owner_guid, created_time) " +
                "VALUES (@guid, @name, @title, @description, @access, @locked, @lockedmsg, @ct, @rt, @it, @idle, @maxp, @minp, @mcpp, @lf, @owner, @now) " +
                $"RETURNING {ContentColumns}", ReadContent, ct,
                [.. SettingsParameters(settings), ("guid", Guid.NewGuid()), ("now", now)]);
        }
        catch (PostgresException e) when (IsUniqueViolation(e, "content_owner_name"))
        {
            throw NameTaken(settings);
        }
    }

    private const string ContentByGuid = $"SELECT {ContentColumns} FROM content WHERE guid = @g";

    public async Task<ContentItem?> GetContentAsync(Guid guid, CancellationToken ct = default) =>
        (await QueryAsync(null, ContentByGuid, ReadContent, ct, ("g", guid))).FirstOrDefault();

    public async Task<ContentItem?> GetContentByIdAsync(long id, CancellationToken ct = default) =>
        (await QueryAsync(null, $"SELECT {ContentColumns} FROM content WHERE id = @i", ReadContent, ct, ("i", id))).FirstOrDefault();

    public async Task<IReadOnlyList<ContentItem>> ListContentAsync(ContentQuery query, CancellationToken ct = default)
    {
        // Only the filters given, so the planner sees plain equalities it can match to the (owner_guid, name) index.
        var where = new List<string>();
        var parameters = new List<(string, object?)>();
        if (query.Name is not null)
        {
            where.Add("name = @n");
            parameters.Add(("n", query.Name));
        }
        if (query.OwnerGuid is { } owner)
        {
            where.Add("owner_guid = @o");
            parameters.Add(("o", owner));
        }
        var filter = where.Count == 0 ? "" : " WHERE " + string.Join(" AND ", where);
        return await QueryAsync(null, $"SELECT {ContentColumns} FROM content{filter} ORDER BY id", ReadContent, ct, [.. parameters]);
    }

    public async Task<ContentItem> UpdateContentSettingsAsync(Guid guid, ContentSettings settings, long expectedVersion, CancellationToken ct = default)
    {
        List<ContentItem> rows;
        try
        {
            rows = await QueryAsync(null,
                "UPDATE content SET name = @name, title = @title, description = @description, access_type = @access, locked = @locked, " +
                "locked_message = @lockedmsg, connection_timeout = @ct, read_timeout = @rt, init_timeout = @it, idle_timeout = @idle, " +
                "max_processes = @maxp, min_processes = @minp, max_conns_per_process = @mcpp, load_factor = @lf, owner_guid = @owner, " +
                $"row_version = row_version + 1 WHERE guid = @guid AND row_version = @ver RETURNING {ContentColumns}", ReadContent, ct,
                [.. SettingsParameters(settings), ("guid", guid), ("ver", expectedVersion)]);
        }
        catch (PostgresException e) when (IsUniqueViolation(e, "content_owner_name"))
        {
            throw NameTaken(settings);
        }
        return rows.Count == 0 ? throw new CatalogConcurrencyException($"content {guid} changed concurrently or no longer exists") : rows[0];
    }

    public async Task<ContentItem> ActivateBundleAsync(Guid guid, BundleActivation a, long expectedVersion, CancellationToken ct = default)
    {
        var rows = await QueryAsync(null,
            "UPDATE content SET bundle_id = @b, app_mode = @m, py_version = @py, entrypoint = @e, content_category = @cat, last_deployed_time = @t, " +
            $"row_version = row_version + 1 WHERE guid = @g AND row_version = @ver RETURNING {ContentColumns}", ReadContent, ct,
            ("b", a.BundleId), ("m", a.AppMode), ("py", a.PyVersion), ("e", a.Entrypoint), ("cat", a.ContentCategory),
            ("t", a.DeployedTime), ("g", guid), ("ver", expectedVersion));
        return rows.Count == 0 ? throw new CatalogConcurrencyException($"content {guid} changed concurrently or no longer exists") : rows[0];
    }

    public async Task<bool> DeleteContentAsync(Guid guid, CancellationToken ct = default) =>
        // Bundles, environment, tasks (and their output), jobs and scoped keys go by cascade, in this one statement.
        await ExecAsync(null, "DELETE FROM content WHERE guid = @g", ct, ("g", guid)) > 0;

    public async Task<IReadOnlyList<ContentItem>> ListContentNeedingProcessesAsync(CancellationToken ct = default) =>
        await QueryAsync(null, $"SELECT {ContentColumns} FROM content WHERE min_processes > 0 AND bundle_id IS NOT NULL ORDER BY id", ReadContent, ct);

    // ---------------------------------------------------------------- bundles

    private const string BundleColumns = "id, content_guid, created_time, created_by, size, md5, sha1, py_version, source, source_repo, source_branch, source_commit";

    private static BundleInfo ReadBundle(NpgsqlDataReader r) => new()
    {
        Id = r.GetInt64(0),
        ContentGuid = r.GetGuid(1),
        CreatedTime = Time(r, 2),
        CreatedBy = r.IsDBNull(3) ? null : r.GetGuid(3),
        Size = r.GetInt64(4),
        Md5 = r.GetString(5),
        Sha1 = r.GetString(6),
        PyVersion = NStr(r, 7),
        Source = r.IsDBNull(8) && r.IsDBNull(9) && r.IsDBNull(10) && r.IsDBNull(11)
            ? BundleSource.None
            : new BundleSource(NStr(r, 8), NStr(r, 9), NStr(r, 10), NStr(r, 11)),
    };

    public Task<BundleInfo> AddBundleAsync(NewBundle b, CancellationToken ct = default) =>
        SingleAsync(null,
            "INSERT INTO bundles (content_guid, created_time, created_by, size, md5, sha1, source, source_repo, source_branch, source_commit) " +
            $"VALUES (@c, @t, @by, @s, @md5, @sha1, @src, @repo, @branch, @commit) RETURNING {BundleColumns}", ReadBundle, ct,
            ("c", b.ContentGuid), ("t", b.CreatedTime), ("by", b.CreatedBy), ("s", b.Size), ("md5", b.Md5), ("sha1", b.Sha1),
            ("src", b.Source.Source), ("repo", b.Source.SourceRepo), ("branch", b.Source.SourceBranch), ("commit", b.Source.SourceCommit));

    public async Task<BundleInfo?> GetBundleAsync(Guid contentGuid, long bundleId, CancellationToken ct = default) =>
        (await QueryAsync(null, $"SELECT {BundleColumns} FROM bundles WHERE id = @i AND content_guid = @c", ReadBundle, ct,
            ("i", bundleId), ("c", contentGuid))).FirstOrDefault();

    public async Task<IReadOnlyList<BundleInfo>> ListBundlesAsync(Guid contentGuid, CancellationToken ct = default) =>
        await QueryAsync(null, $"SELECT {BundleColumns} FROM bundles WHERE content_guid = @c ORDER BY id", ReadBundle, ct, ("c", contentGuid));

    public async Task<bool> DeleteBundleAsync(Guid contentGuid, long bundleId, CancellationToken ct = default) =>
        await ExecAsync(null, "DELETE FROM bundles WHERE id = @i AND content_guid = @c", ct, ("i", bundleId), ("c", contentGuid)) > 0;

    public Task SetBundlePythonVersionAsync(long bundleId, string? pyVersion, CancellationToken ct = default) =>
        ExecAsync(null, "UPDATE bundles SET py_version = @p WHERE id = @i", ct, ("p", pyVersion), ("i", bundleId));

    // ---------------------------------------------------------------- environment

    // Names sort by code point, as SQLite's default collation does, whatever the database's collation.
    private const string EnvironmentNames = "SELECT name FROM content_environment WHERE content_guid = @c ORDER BY name COLLATE \"C\"";

    public async Task<IReadOnlyList<string>> GetEnvironmentNamesAsync(Guid contentGuid, CancellationToken ct = default) =>
        await QueryAsync(null, EnvironmentNames, r => r.GetString(0), ct, ("c", contentGuid));

    public async Task<IReadOnlyDictionary<string, byte[]>> GetEnvironmentAsync(Guid contentGuid, CancellationToken ct = default)
    {
        var rows = await QueryAsync(null, "SELECT name, value FROM content_environment WHERE content_guid = @c",
            r => (r.GetString(0), r.GetFieldValue<byte[]>(1)), ct, ("c", contentGuid));
        return rows.ToDictionary(x => x.Item1, x => x.Item2, StringComparer.Ordinal);
    }

    public async Task<IReadOnlyList<string>> UpdateEnvironmentAsync(Guid contentGuid, IReadOnlyList<KeyValuePair<string, byte[]?>> changes, bool replaceAll, CancellationToken ct = default)
    {
        // Applied in order, a later change to a name overrides an earlier one: keep only the last per name.
        var last = new Dictionary<string, byte[]?>(StringComparer.Ordinal);
        foreach (var (name, value) in changes)
        {
            last[name] = value;
        }
        var set = last.Where(p => p.Value is not null).ToArray();
        var removed = last.Where(p => p.Value is null).Select(p => p.Key).ToArray();

        await using var c = await _db.OpenConnectionAsync(ct);
        await using var tx = await c.BeginTransactionAsync(ct);
        await using var batch = new NpgsqlBatch(c);
        if (replaceAll)
        {
            batch.BatchCommands.Add(Command("DELETE FROM content_environment WHERE content_guid = @c AND NOT (name = ANY(@keep::text[]))",
                ("c", contentGuid), ("keep", set.Select(p => p.Key).ToArray())));
        }
        else if (removed.Length > 0)
        {
            batch.BatchCommands.Add(Command("DELETE FROM content_environment WHERE content_guid = @c AND name = ANY(@names::text[])",
                ("c", contentGuid), ("names", removed)));
        }
        foreach (var (name, value) in set)
        {
            batch.BatchCommands.Add(Command(
                "INSERT INTO content_environment (content_guid, name, value) VALUES (@c, @n, @v) ON CONFLICT (content_guid, name) DO UPDATE SET value = excluded.value",
                ("c", contentGuid), ("n", name), ("v", value)));
        }
        batch.BatchCommands.Add(Command(EnvironmentNames, ("c", contentGuid)));
        var names = new List<string>();
        await using (var reader = await batch.ExecuteReaderAsync(ct))
        {
            // The names are the last command's rows; the writes before it return none.
            do
            {
                while (await reader.ReadAsync(ct))
                {
                    names.Add(reader.GetString(0));
                }
            }
            while (await reader.NextResultAsync(ct));
        }
        await tx.CommitAsync(ct);
        return names;
    }

    // ---------------------------------------------------------------- tasks

    private const string TaskColumns = "id, content_guid, user_guid, kind, created_time, finished, code, error, finished_time, hostname";

    private static TaskInfo ReadTask(NpgsqlDataReader r) => new()
    {
        Id = r.GetString(0),
        ContentGuid = r.IsDBNull(1) ? null : r.GetGuid(1),
        UserGuid = r.IsDBNull(2) ? null : r.GetGuid(2),
        Kind = r.GetString(3),
        CreatedTime = Time(r, 4),
        Finished = r.GetBoolean(5),
        Code = r.GetInt32(6),
        Error = r.GetString(7),
        FinishedTime = NTime(r, 8),
        Hostname = NStr(r, 9),
    };

    public Task CreateTaskAsync(TaskInfo t, CancellationToken ct = default) =>
        ExecAsync(null, "INSERT INTO tasks (id, content_guid, user_guid, kind, created_time, hostname) VALUES (@i, @c, @u, @k, @t, @h)", ct,
            ("i", t.Id), ("c", t.ContentGuid), ("u", t.UserGuid), ("k", t.Kind), ("t", t.CreatedTime), ("h", t.Hostname));

    public async Task<TaskInfo?> GetTaskAsync(string id, CancellationToken ct = default) =>
        (await QueryAsync(null, $"SELECT {TaskColumns} FROM tasks WHERE id = @i", ReadTask, ct, ("i", id))).FirstOrDefault();

    public async Task AppendTaskOutputAsync(string id, int firstLine, IReadOnlyList<string> lines, CancellationToken ct = default)
    {
        if (lines.Count == 0)
        {
            return;
        }
        // One statement for the whole chunk, idempotent by line number: a retried append cannot duplicate output.
        await ExecAsync(null,
            "INSERT INTO task_output (task_id, line_no, line) SELECT @i, @first + (l.ord - 1)::integer, l.line " +
            "FROM unnest(@lines::text[]) WITH ORDINALITY AS l(line, ord) ON CONFLICT (task_id, line_no) DO NOTHING", ct,
            ("i", id), ("first", firstLine), ("lines", lines.ToArray()));
    }

    public async Task<IReadOnlyList<string>> GetTaskOutputAsync(string id, int first, CancellationToken ct = default) =>
        await QueryAsync(null, "SELECT line FROM task_output WHERE task_id = @i AND line_no >= @f ORDER BY line_no", r => r.GetString(0), ct,
            ("i", id), ("f", first));

    public Task FinishTaskAsync(string id, int code, string error, DateTimeOffset finishedTime, CancellationToken ct = default) =>
        ExecAsync(null, "UPDATE tasks SET finished = true, code = @c, error = @e, finished_time = @t WHERE id = @i", ct,
            ("c", code), ("e", error), ("t", finishedTime), ("i", id));

    public Task<int> FinishInterruptedTasksAsync(string hostname, string error, DateTimeOffset now, CancellationToken ct = default) =>
        ExecAsync(null, "UPDATE tasks SET finished = true, code = 1, error = @e, finished_time = @t WHERE hostname = @h AND NOT finished", ct,
            ("e", error), ("t", now), ("h", hostname));

    // ---------------------------------------------------------------- jobs

    private const string JobColumns = "id, job_key, content_guid, bundle_id, pid, tag, start_time, end_time, exit_code, status, hostname, log_file";

    private static JobInfo ReadJob(NpgsqlDataReader r) => new()
    {
        Id = r.GetInt64(0),
        Key = r.GetString(1),
        ContentGuid = r.GetGuid(2),
        BundleId = r.IsDBNull(3) ? null : r.GetInt64(3),
        Pid = NInt(r, 4),
        Tag = r.GetString(5),
        StartTime = Time(r, 6),
        EndTime = NTime(r, 7),
        ExitCode = NInt(r, 8),
        Status = r.GetInt32(9),
        Hostname = r.GetString(10),
        LogFile = NStr(r, 11),
    };

    public Task<JobInfo> AddJobAsync(NewJob j, CancellationToken ct = default) =>
        SingleAsync(null,
            "INSERT INTO jobs (job_key, content_guid, bundle_id, pid, tag, start_time, hostname, log_file) VALUES (@k, @c, @b, @p, @tag, @t, @h, @l) " +
            $"RETURNING {JobColumns}", ReadJob, ct, ("k", j.Key), ("c", j.ContentGuid), ("b", j.BundleId), ("p", j.Pid),
            ("tag", j.Tag), ("t", j.StartTime), ("h", j.Hostname), ("l", j.LogFile));

    public Task SetJobPidAsync(string key, int pid, CancellationToken ct = default) =>
        ExecAsync(null, "UPDATE jobs SET pid = @p WHERE job_key = @k", ct, ("p", pid), ("k", key));

    public Task FinishJobAsync(string key, int? exitCode, DateTimeOffset endTime, CancellationToken ct = default) =>
        ExecAsync(null, "UPDATE jobs SET status = @s, exit_code = @e, end_time = @t WHERE job_key = @k AND status = @active", ct,
            ("s", JobStatus.Finished), ("e", exitCode), ("t", endTime), ("k", key), ("active", JobStatus.Active));

    public async Task<IReadOnlyList<JobInfo>> ListJobsAsync(Guid contentGuid, CancellationToken ct = default) =>
        await QueryAsync(null, $"SELECT {JobColumns} FROM jobs WHERE content_guid = @c ORDER BY id", ReadJob, ct, ("c", contentGuid));

    public async Task<JobInfo?> GetJobAsync(Guid contentGuid, string key, CancellationToken ct = default) =>
        (await QueryAsync(null, $"SELECT {JobColumns} FROM jobs WHERE content_guid = @c AND job_key = @k", ReadJob, ct,
            ("c", contentGuid), ("k", key))).FirstOrDefault();

    // "status = 0" literally, not a parameter, so the planner can match the partial index jobs_active.
    public async Task<IReadOnlyList<JobInfo>> ListActiveJobsAsync(string hostname, CancellationToken ct = default) =>
        await QueryAsync(null, $"SELECT {JobColumns} FROM jobs WHERE hostname = @h AND status = {JobStatus.Active} ORDER BY id", ReadJob, ct, ("h", hostname));

    public Task<int> FinishOrphanedJobsAsync(string hostname, DateTimeOffset now, CancellationToken ct = default) =>
        ExecAsync(null, $"UPDATE jobs SET status = @s, end_time = @t WHERE hostname = @h AND status = {JobStatus.Active}", ct,
            ("s", JobStatus.Finished), ("t", now), ("h", hostname));

    // ---------------------------------------------------------------- nodes

    private const string NodeColumns = "name, silo_address, internal_url, processes, memory_bytes, cpu_load, draining, started_time, heartbeat";

    private static NodeInfo ReadNode(NpgsqlDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt32(3), r.GetInt64(4), r.GetDouble(5), r.GetBoolean(6), Time(r, 7), Time(r, 8));

    public Task UpsertNodeAsync(NodeInfo node, CancellationToken ct = default) =>
        ExecAsync(null,
            $"INSERT INTO nodes ({NodeColumns}) VALUES (@n, @s, @u, @p, @m, @cpu, @d, @st, @hb) ON CONFLICT (name) DO UPDATE SET " +
            "silo_address = excluded.silo_address, internal_url = excluded.internal_url, processes = excluded.processes, " +
            "memory_bytes = excluded.memory_bytes, cpu_load = excluded.cpu_load, draining = excluded.draining, " +
            "started_time = excluded.started_time, heartbeat = excluded.heartbeat", ct,
            ("n", node.Name), ("s", node.SiloAddress), ("u", node.InternalUrl), ("p", node.Processes), ("m", node.MemoryBytes),
            ("cpu", node.CpuLoad), ("d", node.Draining), ("st", node.StartedTime), ("hb", node.Heartbeat));

    public async Task<IReadOnlyList<NodeInfo>> ListNodesAsync(CancellationToken ct = default) =>
        await QueryAsync(null, $"SELECT {NodeColumns} FROM nodes ORDER BY name COLLATE \"C\"", ReadNode, ct);

    public async Task<bool> DeleteNodeAsync(string name, CancellationToken ct = default) =>
        await ExecAsync(null, "DELETE FROM nodes WHERE name = @n", ct, ("n", name)) > 0;

    // ---------------------------------------------------------------- plumbing

    private static DateTimeOffset Time(NpgsqlDataReader r, int i) => r.GetFieldValue<DateTimeOffset>(i);

    private static DateTimeOffset? NTime(NpgsqlDataReader r, int i) => r.IsDBNull(i) ? null : r.GetFieldValue<DateTimeOffset>(i);

    private static bool IsUniqueViolation(PostgresException e, string constraint) =>
        e.SqlState == PostgresErrorCodes.UniqueViolation && e.ConstraintName == constraint;

    private static NpgsqlParameter Parameter(string name, object? value) => new(name, value switch
    {
        null => DBNull.Value,
        // timestamptz takes UTC only; the instant is what is stored, the offset was never part of it.
        DateTimeOffset t => t.ToUniversalTime(),
        _ => value,
    });

    private static NpgsqlBatchCommand Command(string sql, params (string, object?)[] parameters)
    {
        var command = new NpgsqlBatchCommand(sql);
        foreach (var (name, value) in parameters)
        {
            command.Parameters.Add(Parameter(name, value));
        }
        return command;
    }

    /// <summary>A command on <paramref name="c"/> (inside its transaction, if any), or, with null, on a pooled connection that goes back when the command is done.</summary>
    private NpgsqlCommand CreateCommand(NpgsqlConnection? c, string sql, (string, object?)[] parameters)
    {
        var cmd = c is not null ? new NpgsqlCommand(sql, c) : _db.CreateCommand(sql);
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.Add(Parameter(name, value));
        }
        return cmd;
    }

    private async Task<int> ExecAsync(NpgsqlConnection? c, string sql, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = CreateCommand(c, sql, parameters);
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    private async Task<T> ScalarAsync<T>(NpgsqlConnection? c, string sql, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = CreateCommand(c, sql, parameters);
        return (T)(await cmd.ExecuteScalarAsync(ct))!;
    }

    private async Task<List<T>> QueryAsync<T>(NpgsqlConnection? c, string sql, Func<NpgsqlDataReader, T> read, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = CreateCommand(c, sql, parameters);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var list = new List<T>();
        while (await reader.ReadAsync(ct))
        {
            list.Add(read(reader));
        }
        return list;
    }

    private async Task<T> SingleAsync<T>(NpgsqlConnection? c, string sql, Func<NpgsqlDataReader, T> read, CancellationToken ct, params (string, object?)[] parameters) =>
        (await QueryAsync(c, sql, read, ct, parameters))[0];

    [LoggerMessage(EventId = 2, Level = LogLevel.Error, Message = "Cannot reach the PostgreSQL catalog at {Where}: {Reason}")]
    private static partial void LogUnavailable(ILogger logger, string where, string reason);
}
