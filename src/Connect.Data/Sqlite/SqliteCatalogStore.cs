using System.Globalization;
using Connect.Core.Model;
using Microsoft.Data.Sqlite;

namespace Connect.Data.Sqlite;

/// <summary>The embedded catalog of single-node mode: one SQLite file in the data directory, WAL journal.</summary>
public sealed class SqliteCatalogStore : ICatalogStore
{
    private const UnixFileMode OwnerOnlyFile = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode OwnerOnlyDirectory = OwnerOnlyFile | UnixFileMode.UserExecute;

    private readonly string _connectionString;
    private readonly string _databasePath;

    public SqliteCatalogStore(string databasePath)
    {
        _databasePath = databasePath;
        _connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = databasePath,
            Mode = SqliteOpenMode.ReadWriteCreate,
            Cache = SqliteCacheMode.Private,
            Pooling = true,
            DefaultTimeout = 30,
        }.ToString();
    }

    /// <summary>
    /// Opens a connection on a thread-pool thread. Microsoft.Data.Sqlite's "async" methods run synchronously, so
    /// every method awaits this with ConfigureAwait(false): the SQL that follows runs on the pool, never on the
    /// scheduler of the grain that called (a busy database may wait up to its busy timeout).
    /// </summary>
    private Task<SqliteConnection> OpenAsync(CancellationToken ct) => Task.Run(async () =>
    {
        var connection = new SqliteConnection(_connectionString);
        await connection.OpenAsync(ct);
        // Per-connection pragmas: foreign keys are off by default in SQLite, and a busy writer should be waited for, not failed on.
        await using var cmd = connection.CreateCommand();
        cmd.CommandText = "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 30000;";
        await cmd.ExecuteNonQueryAsync(ct);
        return connection;
    }, ct);

    public async Task MigrateAsync(CancellationToken ct = default)
    {
        RestrictFileModes();
        await using var connection = await OpenAsync(ct).ConfigureAwait(false);
        await Exec(connection, null, "PRAGMA journal_mode = WAL;", ct);
        // SQLite gives -wal and -shm the database file's mode; this only repairs ones left looser by an older version.
        RestrictFileModes();
        await Exec(connection, null, "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_time TEXT NOT NULL);", ct);
        foreach (var (version, sql) in SqliteSchema.Migrations)
        {
            await using var tx = (SqliteTransaction)await connection.BeginTransactionAsync(ct);
            var applied = await Scalar<long?>(connection, tx, "SELECT version FROM schema_migrations WHERE version = $v", ct, ("$v", version));
            if (applied is not null)
            {
                await tx.RollbackAsync(ct);
                continue;
            }
            await Exec(connection, tx, sql, ct);
            await Exec(connection, tx, "INSERT INTO schema_migrations(version, applied_time) VALUES ($v, $t)", ct, ("$v", version), ("$t", Time(DateTimeOffset.UtcNow)));
            await tx.CommitAsync(ct);
        }
    }

    /// <summary>
    /// The catalog holds API key hashes, users and (sealed) environment variables: only the server's own user may read it.
    /// The file is created 0600 before SQLite opens it, since SQLite would create it 0644 (less the umask); a database
    /// from an earlier, looser start is tightened, with its directory (0700).
    /// </summary>
    private void RestrictFileModes()
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }
        if (_databasePath.Length == 0 || _databasePath == ":memory:")
        {
            return;
        }
        var directory = Path.GetDirectoryName(Path.GetFullPath(_databasePath))!;
        Directory.CreateDirectory(directory, OwnerOnlyDirectory);
        File.SetUnixFileMode(directory, OwnerOnlyDirectory);
        using (new FileStream(_databasePath, new FileStreamOptions { Mode = FileMode.OpenOrCreate, Access = FileAccess.Write, UnixCreateMode = OwnerOnlyFile }))
        {
        }
        foreach (var file in new[] { _databasePath, _databasePath + "-wal", _databasePath + "-shm", _databasePath + "-journal" })
        {
            if (File.Exists(file))
            {
                File.SetUnixFileMode(file, OwnerOnlyFile);
            }
        }
    }

    // ---------------------------------------------------------------- users and keys

    private const string UserColumns = "id, guid, username, email, first_name, last_name, user_role, created_time, updated_time, active_time, locked, confirmed";

    private static UserInfo ReadUser(SqliteDataReader r) => new()
    {
        Id = r.GetInt64(0),
        Guid = Guid.Parse(r.GetString(1)),
        Username = r.GetString(2),
        Email = r.GetString(3),
        FirstName = r.GetString(4),
        LastName = r.GetString(5),
        Role = r.GetString(6),
        CreatedTime = ParseTime(r.GetString(7)),
        UpdatedTime = ParseTime(r.GetString(8)),
        ActiveTime = r.IsDBNull(9) ? null : ParseTime(r.GetString(9)),
        Locked = r.GetInt64(10) != 0,
        Confirmed = r.GetInt64(11) != 0,
    };

    public async Task<int> CountUsersAsync(CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (int)(await Scalar<long?>(c, null, "SELECT COUNT(*) FROM users", ct) ?? 0);
    }

    public async Task<UserInfo> CreateUserAsync(NewUser user, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        // IMMEDIATE transaction: the name check and the insert cannot interleave with a racing insert of the same name.
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var created = await InsertUser(c, tx, user, ct);
        await tx.CommitAsync(ct);
        return created;
    }

    private static async Task<UserInfo> InsertUser(SqliteConnection c, SqliteTransaction? tx, NewUser user, CancellationToken ct)
    {
        if (await Scalar<long?>(c, tx, "SELECT id FROM users WHERE username = $u", ct, ("$u", user.Username)) is not null)
        {
            throw new CatalogConflictException($"a user named '{user.Username}' already exists");
        }
        var list = await Query(c, tx,
            $"INSERT INTO users (guid, username, email, first_name, last_name, user_role, created_time, updated_time) " +
            $"VALUES ($g, $u, $e, $f, $l, $r, $t, $t) RETURNING {UserColumns}",
            ReadUser, ct,
            ("$g", Guid.NewGuid().ToString()), ("$u", user.Username), ("$e", user.Email), ("$f", user.FirstName),
            ("$l", user.LastName), ("$r", user.Role), ("$t", Time(user.Now)));
        return list[0];
    }

    public async Task<UserInfo?> GetUserAsync(Guid guid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, $"SELECT {UserColumns} FROM users WHERE guid = $g", ReadUser, ct, ("$g", guid.ToString()))).FirstOrDefault();
    }

    public async Task<UserInfo?> GetUserByNameAsync(string username, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, $"SELECT {UserColumns} FROM users WHERE username = $u", ReadUser, ct, ("$u", username))).FirstOrDefault();
    }

    public async Task<IReadOnlyList<UserInfo>> ListUsersAsync(CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, $"SELECT {UserColumns} FROM users ORDER BY id", ReadUser, ct);
    }

    private const string KeyColumns = "id, user_guid, name, created_time, last_used_time, content_guid";

    private static ApiKeyInfo ReadKey(SqliteDataReader r) => new(
        r.GetInt64(0), Guid.Parse(r.GetString(1)), r.GetString(2), ParseTime(r.GetString(3)), r.IsDBNull(4) ? null : ParseTime(r.GetString(4)),
        r.IsDBNull(5) ? null : Guid.Parse(r.GetString(5)));

    public async Task<ApiKeyInfo> CreateApiKeyAsync(Guid userGuid, string name, string keyHash, Guid? contentScope = null, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await InsertKey(c, null, userGuid, name, keyHash, DateTimeOffset.UtcNow, ct, contentScope);
    }

    private static async Task<ApiKeyInfo> InsertKey(SqliteConnection c, SqliteTransaction? tx, Guid userGuid, string name, string keyHash, DateTimeOffset now, CancellationToken ct, Guid? contentScope = null) =>
        (await Query(c, tx,
            $"INSERT INTO api_keys (user_guid, name, key_hash, created_time, content_guid) VALUES ($u, $n, $h, $t, $c) RETURNING {KeyColumns}",
            ReadKey, ct, ("$u", userGuid.ToString()), ("$n", name), ("$h", keyHash), ("$t", Time(now)), ("$c", contentScope?.ToString())))[0];

    public async Task<IReadOnlyList<ApiKeyInfo>> ListApiKeysAsync(Guid userGuid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, $"SELECT {KeyColumns} FROM api_keys WHERE user_guid = $u ORDER BY id",
            ReadKey, ct, ("$u", userGuid.ToString()));
    }

    public async Task<bool> DeleteApiKeyAsync(Guid userGuid, long keyId, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Exec(c, null, "DELETE FROM api_keys WHERE id = $i AND user_guid = $u", ct, ("$i", keyId), ("$u", userGuid.ToString())) > 0;
    }

    public async Task<int> DeleteApiKeysNamedAsync(string name, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Exec(c, null, "DELETE FROM api_keys WHERE name = $n", ct, ("$n", name));
    }

    public async Task<ApiKeyHolder?> FindUserByKeyHashAsync(string keyHash, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        // The scope is read last, after the user's columns, so that ReadUser's ordinals hold.
        return (await Query(c, null,
            $"SELECT {string.Join(", ", UserColumns.Split(", ").Select(col => "u." + col))}, k.content_guid FROM api_keys k JOIN users u ON u.guid = k.user_guid WHERE k.key_hash = $h",
            r => new ApiKeyHolder(ReadUser(r), r.IsDBNull(12) ? null : Guid.Parse(r.GetString(12))), ct, ("$h", keyHash))).FirstOrDefault();
    }

    public async Task RecordApiKeysUsedAsync(IReadOnlyCollection<KeyValuePair<string, DateTimeOffset>> lastUsed, CancellationToken ct = default)
    {
        if (lastUsed.Count == 0)
        {
            return;
        }
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        // One transaction: one fsync for the whole batch. The stored text is fixed-width UTC, so it compares as time;
        // a batch flushed late (another node's, say) never moves a mark back.
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        foreach (var (hash, time) in lastUsed)
        {
            await Exec(c, tx, "UPDATE api_keys SET last_used_time = $t WHERE key_hash = $h AND (last_used_time IS NULL OR last_used_time < $t)",
                ct, ("$t", Time(time)), ("$h", hash));
        }
        await tx.CommitAsync(ct);
    }

    public async Task<UserInfo?> SetUserLockedAsync(Guid guid, bool locked, DateTimeOffset now, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, $"UPDATE users SET locked = $l, updated_time = $t WHERE guid = $g RETURNING {UserColumns}",
            ReadUser, ct, ("$l", locked ? 1 : 0), ("$t", Time(now)), ("$g", guid.ToString()))).FirstOrDefault();
    }

    public async Task<UserInfo?> BootstrapAdministratorAsync(NewUser admin, string keyName, string keyHash, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        // Microsoft.Data.Sqlite begins transactions IMMEDIATE: the write lock is taken up front, so two racing bootstraps cannot both see an empty table.
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        if ((await Scalar<long?>(c, tx, "SELECT COUNT(*) FROM users", ct) ?? 0) > 0)
        {
            return null;
        }
        var user = await InsertUser(c, tx, admin, ct);
        await InsertKey(c, tx, user.Guid, keyName, keyHash, admin.Now, ct);
        await tx.CommitAsync(ct);
        return user;
    }

    // ---------------------------------------------------------------- content

    private const string ContentColumns =
        "id, guid, name, title, description, access_type, locked, locked_message, connection_timeout, read_timeout, init_timeout, " +
        "idle_timeout, max_processes, min_processes, max_conns_per_process, load_factor, owner_guid, created_time, last_deployed_time, " +
        "bundle_id, app_mode, content_category, py_version, entrypoint, row_version";

    private static int? NInt(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetInt32(i);

    private static ContentItem ReadContent(SqliteDataReader r) => new()
    {
        Id = r.GetInt64(0),
        Guid = Guid.Parse(r.GetString(1)),
        Settings = new ContentSettings
        {
            Name = r.GetString(2),
            Title = r.GetString(3),
            Description = r.GetString(4),
            AccessType = r.GetString(5),
            Locked = r.GetInt64(6) != 0,
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
            OwnerGuid = Guid.Parse(r.GetString(16)),
        },
        CreatedTime = ParseTime(r.GetString(17)),
        LastDeployedTime = r.IsDBNull(18) ? null : ParseTime(r.GetString(18)),
        BundleId = r.IsDBNull(19) ? null : r.GetInt64(19),
        AppMode = r.GetString(20),
        ContentCategory = r.GetString(21),
        PyVersion = r.IsDBNull(22) ? null : r.GetString(22),
        Entrypoint = r.IsDBNull(23) ? null : r.GetString(23),
        RowVersion = r.GetInt64(24),
    };

    private static (string, object?)[] SettingsParameters(ContentSettings s) =>
    [
        ("$name", s.Name), ("$title", s.Title), ("$description", s.Description), ("$access", s.AccessType),
        ("$locked", s.Locked ? 1 : 0), ("$lockedmsg", s.LockedMessage),
        ("$ct", s.Runtime.ConnectionTimeout), ("$rt", s.Runtime.ReadTimeout), ("$it", s.Runtime.InitTimeout),
        ("$idle", s.Runtime.IdleTimeout), ("$maxp", s.Runtime.MaxProcesses), ("$minp", s.Runtime.MinProcesses),
        ("$mcpp", s.Runtime.MaxConnsPerProcess), ("$lf", s.Runtime.LoadFactor), ("$owner", s.OwnerGuid.ToString()),
    ];

    private static async Task EnsureNameFree(SqliteConnection c, SqliteTransaction tx, ContentSettings s, Guid? self, CancellationToken ct)
    {
        var clash = await Scalar<string?>(c, tx, "SELECT guid FROM content WHERE owner_guid = $o AND name = $n", ct,
            ("$o", s.OwnerGuid.ToString()), ("$n", s.Name));
        if (clash is not null && (self is null || Guid.Parse(clash) != self))
        {
            throw new CatalogConflictException($"content named '{s.Name}' already exists for this owner");
        }
    }

    public async Task<ContentItem> CreateContentAsync(ContentSettings settings, DateTimeOffset now, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        await EnsureNameFree(c, tx, settings, null, ct);
        var p = SettingsParameters(settings).Append(("$guid", Guid.NewGuid().ToString())).Append(("$now", Time(now))).ToArray();
        var item = (await Query(c, tx,
            "INSERT INTO content (guid, name, title, description, access_type, locked, locked_message, connection_timeout, read_timeout, " +
            "init_timeout, idle_timeout, max_processes, min_processes, max_conns_per_process, load_factor, owner_guid, created_time) " +
            "VALUES ($guid, $name, $title, $description, $access, $locked, $lockedmsg, $ct, $rt, $it, $idle, $maxp, $minp, $mcpp, $lf, $owner, $now) " +
            $"RETURNING {ContentColumns}", ReadContent, ct, p))[0];
        await tx.CommitAsync(ct);
        return item;
    }

    public async Task<ContentItem?> GetContentAsync(Guid guid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, $"SELECT {ContentColumns} FROM content WHERE guid = $g", ReadContent, ct, ("$g", guid.ToString()))).FirstOrDefault();
    }

    public async Task<ContentItem?> GetContentByIdAsync(long id, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, $"SELECT {ContentColumns} FROM content WHERE id = $i", ReadContent, ct, ("$i", id))).FirstOrDefault();
    }

    public async Task<IReadOnlyList<ContentItem>> ListContentAsync(ContentQuery query, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null,
            $"SELECT {ContentColumns} FROM content WHERE ($n IS NULL OR name = $n) AND ($o IS NULL OR owner_guid = $o) ORDER BY id",
            ReadContent, ct, ("$n", query.Name), ("$o", query.OwnerGuid?.ToString()));
    }

    public async Task<ContentItem> UpdateContentSettingsAsync(Guid guid, ContentSettings settings, long expectedVersion, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        // The version first: a writer with a stale row must re-read before what it asks for (a name, say) can be judged.
        if (await Scalar<long?>(c, tx, "SELECT row_version FROM content WHERE guid = $g", ct, ("$g", guid.ToString())) != expectedVersion)
        {
            throw new CatalogConcurrencyException($"content {guid} changed concurrently or no longer exists");
        }
        await EnsureNameFree(c, tx, settings, guid, ct);
        var p = SettingsParameters(settings).Append(("$guid", guid.ToString())).Append(("$ver", expectedVersion)).ToArray();
        var rows = await Query(c, tx,
            "UPDATE content SET name = $name, title = $title, description = $description, access_type = $access, locked = $locked, " +
            "locked_message = $lockedmsg, connection_timeout = $ct, read_timeout = $rt, init_timeout = $it, idle_timeout = $idle, " +
            "max_processes = $maxp, min_processes = $minp, max_conns_per_process = $mcpp, load_factor = $lf, owner_guid = $owner, " +
            $"row_version = row_version + 1 WHERE guid = $guid AND row_version = $ver RETURNING {ContentColumns}", ReadContent, ct, p);
        if (rows.Count == 0)
        {
            throw new CatalogConcurrencyException($"content {guid} changed concurrently or no longer exists");
        }
        await tx.CommitAsync(ct);
        return rows[0];
    }

    public async Task<ContentItem> ActivateBundleAsync(Guid guid, BundleActivation a, long expectedVersion, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        var rows = await Query(c, null,
            "UPDATE content SET bundle_id = $b, app_mode = $m, py_version = $py, entrypoint = $e, content_category = $cat, last_deployed_time = $t, " +
            $"row_version = row_version + 1 WHERE guid = $g AND row_version = $ver RETURNING {ContentColumns}", ReadContent, ct,
            ("$b", a.BundleId), ("$m", a.AppMode), ("$py", a.PyVersion), ("$e", a.Entrypoint), ("$cat", a.ContentCategory),
            ("$t", Time(a.DeployedTime)), ("$g", guid.ToString()), ("$ver", expectedVersion));
        return rows.Count == 0 ? throw new CatalogConcurrencyException($"content {guid} changed concurrently or no longer exists") : rows[0];
    }

    public async Task<bool> DeleteContentAsync(Guid guid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Exec(c, null, "DELETE FROM content WHERE guid = $g", ct, ("$g", guid.ToString())) > 0;
    }

    public async Task<IReadOnlyList<ContentItem>> ListContentNeedingProcessesAsync(CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, $"SELECT {ContentColumns} FROM content WHERE min_processes > 0 AND bundle_id IS NOT NULL", ReadContent, ct);
    }

    // ---------------------------------------------------------------- bundles

    private static BundleInfo ReadBundle(SqliteDataReader r) => new()
    {
        Id = r.GetInt64(0),
        ContentGuid = Guid.Parse(r.GetString(1)),
        CreatedTime = ParseTime(r.GetString(2)),
        CreatedBy = r.IsDBNull(3) ? null : Guid.Parse(r.GetString(3)),
        Size = r.GetInt64(4),
        Md5 = r.GetString(5),
        Sha1 = r.GetString(6),
        PyVersion = r.IsDBNull(7) ? null : r.GetString(7),
        Source = r.IsDBNull(8) && r.IsDBNull(9) && r.IsDBNull(10) && r.IsDBNull(11)
            ? BundleSource.None
            : new BundleSource(NStr(r, 8), NStr(r, 9), NStr(r, 10), NStr(r, 11)),
    };

    private static string? NStr(SqliteDataReader r, int i) => r.IsDBNull(i) ? null : r.GetString(i);

    private const string BundleColumns = "id, content_guid, created_time, created_by, size, md5, sha1, py_version, source, source_repo, source_branch, source_commit";

    public async Task<BundleInfo> AddBundleAsync(NewBundle b, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null,
            "INSERT INTO bundles (content_guid, created_time, created_by, size, md5, sha1, source, source_repo, source_branch, source_commit) " +
            $"VALUES ($c, $t, $by, $s, $md5, $sha1, $src, $repo, $branch, $commit) RETURNING {BundleColumns}",
            ReadBundle, ct, ("$c", b.ContentGuid.ToString()), ("$t", Time(b.CreatedTime)), ("$by", b.CreatedBy?.ToString()),
            ("$s", b.Size), ("$md5", b.Md5), ("$sha1", b.Sha1), ("$src", b.Source.Source), ("$repo", b.Source.SourceRepo),
            ("$branch", b.Source.SourceBranch), ("$commit", b.Source.SourceCommit)))[0];
    }

    public async Task<BundleInfo?> GetBundleAsync(Guid contentGuid, long bundleId, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, $"SELECT {BundleColumns} FROM bundles WHERE id = $i AND content_guid = $c", ReadBundle, ct,
            ("$i", bundleId), ("$c", contentGuid.ToString()))).FirstOrDefault();
    }

    public async Task<IReadOnlyList<BundleInfo>> ListBundlesAsync(Guid contentGuid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, $"SELECT {BundleColumns} FROM bundles WHERE content_guid = $c ORDER BY id", ReadBundle, ct, ("$c", contentGuid.ToString()));
    }

    public async Task<bool> DeleteBundleAsync(Guid contentGuid, long bundleId, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Exec(c, null, "DELETE FROM bundles WHERE id = $i AND content_guid = $c", ct, ("$i", bundleId), ("$c", contentGuid.ToString())) > 0;
    }

    public async Task SetBundlePythonVersionAsync(long bundleId, string? pyVersion, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await Exec(c, null, "UPDATE bundles SET py_version = $p WHERE id = $i", ct, ("$p", pyVersion), ("$i", bundleId));
    }

    // ---------------------------------------------------------------- environment

    public async Task<IReadOnlyList<string>> GetEnvironmentNamesAsync(Guid contentGuid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Names(c, null, contentGuid, ct);
    }

    private static Task<List<string>> Names(SqliteConnection c, SqliteTransaction? tx, Guid contentGuid, CancellationToken ct) =>
        Query(c, tx, "SELECT name FROM content_environment WHERE content_guid = $c ORDER BY name", r => r.GetString(0), ct, ("$c", contentGuid.ToString()));

    public async Task<IReadOnlyDictionary<string, byte[]>> GetEnvironmentAsync(Guid contentGuid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        var rows = await Query(c, null, "SELECT name, value FROM content_environment WHERE content_guid = $c", r => (r.GetString(0), (byte[])r.GetValue(1)), ct,
            ("$c", contentGuid.ToString()));
        return rows.ToDictionary(x => x.Item1, x => x.Item2, StringComparer.Ordinal);
    }

    public async Task<IReadOnlyList<string>> UpdateEnvironmentAsync(Guid contentGuid, IReadOnlyList<KeyValuePair<string, byte[]?>> changes, bool replaceAll, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        var g = contentGuid.ToString();
        if (replaceAll)
        {
            await Exec(c, tx, "DELETE FROM content_environment WHERE content_guid = $c", ct, ("$c", g));
        }
        foreach (var (name, value) in changes)
        {
            if (value is null)
            {
                await Exec(c, tx, "DELETE FROM content_environment WHERE content_guid = $c AND name = $n", ct, ("$c", g), ("$n", name));
            }
            else
            {
                await Exec(c, tx,
                    "INSERT INTO content_environment (content_guid, name, value) VALUES ($c, $n, $v) ON CONFLICT (content_guid, name) DO UPDATE SET value = excluded.value",
                    ct, ("$c", g), ("$n", name), ("$v", value));
            }
        }
        var names = await Names(c, tx, contentGuid, ct);
        await tx.CommitAsync(ct);
        return names;
    }

    // ---------------------------------------------------------------- tasks

    private static TaskInfo ReadTask(SqliteDataReader r) => new()
    {
        Id = r.GetString(0),
        ContentGuid = r.IsDBNull(1) ? null : Guid.Parse(r.GetString(1)),
        UserGuid = r.IsDBNull(2) ? null : Guid.Parse(r.GetString(2)),
        Kind = r.GetString(3),
        CreatedTime = ParseTime(r.GetString(4)),
        Finished = r.GetInt64(5) != 0,
        Code = r.GetInt32(6),
        Error = r.GetString(7),
        FinishedTime = r.IsDBNull(8) ? null : ParseTime(r.GetString(8)),
        Hostname = r.IsDBNull(9) ? null : r.GetString(9),
    };

    public async Task CreateTaskAsync(TaskInfo t, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await Exec(c, null, "INSERT INTO tasks (id, content_guid, user_guid, kind, created_time, hostname) VALUES ($i, $c, $u, $k, $t, $h)", ct,
            ("$i", t.Id), ("$c", t.ContentGuid?.ToString()), ("$u", t.UserGuid?.ToString()), ("$k", t.Kind), ("$t", Time(t.CreatedTime)), ("$h", t.Hostname));
    }

    public async Task<TaskInfo?> GetTaskAsync(string id, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, "SELECT id, content_guid, user_guid, kind, created_time, finished, code, error, finished_time, hostname FROM tasks WHERE id = $i",
            ReadTask, ct, ("$i", id))).FirstOrDefault();
    }

    public async Task AppendTaskOutputAsync(string id, int firstLine, IReadOnlyList<string> lines, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await using var tx = (SqliteTransaction)await c.BeginTransactionAsync(ct);
        for (var i = 0; i < lines.Count; i++)
        {
            // Idempotent by line number, so a retried append after a failure cannot duplicate output.
            await Exec(c, tx, "INSERT OR IGNORE INTO task_output (task_id, line_no, line) VALUES ($i, $n, $l)", ct,
                ("$i", id), ("$n", firstLine + i), ("$l", lines[i]));
        }
        await tx.CommitAsync(ct);
    }

    public async Task<IReadOnlyList<string>> GetTaskOutputAsync(string id, int first, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, "SELECT line FROM task_output WHERE task_id = $i AND line_no >= $f ORDER BY line_no", r => r.GetString(0), ct,
            ("$i", id), ("$f", first));
    }

    public async Task FinishTaskAsync(string id, int code, string error, DateTimeOffset finishedTime, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await Exec(c, null, "UPDATE tasks SET finished = 1, code = $c, error = $e, finished_time = $t WHERE id = $i", ct,
            ("$c", code), ("$e", error), ("$t", Time(finishedTime)), ("$i", id));
    }

    public async Task<int> FinishInterruptedTasksAsync(string hostname, string error, DateTimeOffset now, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Exec(c, null, "UPDATE tasks SET finished = 1, code = 1, error = $e, finished_time = $t WHERE hostname = $h AND finished = 0", ct,
            ("$e", error), ("$t", Time(now)), ("$h", hostname));
    }

    // ---------------------------------------------------------------- jobs

    private const string JobColumns = "id, job_key, content_guid, bundle_id, pid, tag, start_time, end_time, exit_code, status, hostname, log_file";

    private static JobInfo ReadJob(SqliteDataReader r) => new()
    {
        Id = r.GetInt64(0),
        Key = r.GetString(1),
        ContentGuid = Guid.Parse(r.GetString(2)),
        BundleId = r.IsDBNull(3) ? null : r.GetInt64(3),
        Pid = NInt(r, 4),
        Tag = r.GetString(5),
        StartTime = ParseTime(r.GetString(6)),
        EndTime = r.IsDBNull(7) ? null : ParseTime(r.GetString(7)),
        ExitCode = NInt(r, 8),
        Status = r.GetInt32(9),
        Hostname = r.GetString(10),
        LogFile = r.IsDBNull(11) ? null : r.GetString(11),
    };

    public async Task<JobInfo> AddJobAsync(NewJob j, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null,
            "INSERT INTO jobs (job_key, content_guid, bundle_id, pid, tag, start_time, hostname, log_file) VALUES ($k, $c, $b, $p, $tag, $t, $h, $l) " +
            $"RETURNING {JobColumns}", ReadJob, ct, ("$k", j.Key), ("$c", j.ContentGuid.ToString()), ("$b", j.BundleId), ("$p", j.Pid),
            ("$tag", j.Tag), ("$t", Time(j.StartTime)), ("$h", j.Hostname), ("$l", j.LogFile)))[0];
    }

    public async Task SetJobPidAsync(string key, int pid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await Exec(c, null, "UPDATE jobs SET pid = $p WHERE job_key = $k", ct, ("$p", pid), ("$k", key));
    }

    public async Task FinishJobAsync(string key, int? exitCode, DateTimeOffset endTime, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await Exec(c, null, "UPDATE jobs SET status = $s, exit_code = $e, end_time = $t WHERE job_key = $k AND status = $active", ct,
            ("$s", JobStatus.Finished), ("$e", exitCode), ("$t", Time(endTime)), ("$k", key), ("$active", JobStatus.Active));
    }

    public async Task<IReadOnlyList<JobInfo>> ListJobsAsync(Guid contentGuid, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, $"SELECT {JobColumns} FROM jobs WHERE content_guid = $c ORDER BY id", ReadJob, ct, ("$c", contentGuid.ToString()));
    }

    public async Task<JobInfo?> GetJobAsync(Guid contentGuid, string key, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return (await Query(c, null, $"SELECT {JobColumns} FROM jobs WHERE content_guid = $c AND job_key = $k", ReadJob, ct,
            ("$c", contentGuid.ToString()), ("$k", key))).FirstOrDefault();
    }

    public async Task<IReadOnlyList<JobInfo>> ListActiveJobsAsync(string hostname, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, $"SELECT {JobColumns} FROM jobs WHERE hostname = $h AND status = $active ORDER BY id", ReadJob, ct,
            ("$h", hostname), ("$active", JobStatus.Active));
    }

    public async Task<int> FinishOrphanedJobsAsync(string hostname, DateTimeOffset now, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Exec(c, null, "UPDATE jobs SET status = $s, end_time = $t WHERE hostname = $h AND status = $active", ct,
            ("$s", JobStatus.Finished), ("$t", Time(now)), ("$h", hostname), ("$active", JobStatus.Active));
    }

    // ---------------------------------------------------------------- nodes

    private const string NodeColumns = "name, silo_address, internal_url, processes, memory_bytes, cpu_load, draining, started_time, heartbeat";

    private static NodeInfo ReadNode(SqliteDataReader r) => new(
        r.GetString(0), r.GetString(1), r.GetString(2), r.GetInt32(3), r.GetInt64(4), r.GetDouble(5), r.GetInt64(6) != 0,
        ParseTime(r.GetString(7)), ParseTime(r.GetString(8)));

    public async Task UpsertNodeAsync(NodeInfo node, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        await Exec(c, null,
            $"INSERT INTO nodes ({NodeColumns}) VALUES ($n, $s, $u, $p, $m, $cpu, $d, $st, $hb) ON CONFLICT (name) DO UPDATE SET " +
            "silo_address = excluded.silo_address, internal_url = excluded.internal_url, processes = excluded.processes, " +
            "memory_bytes = excluded.memory_bytes, cpu_load = excluded.cpu_load, draining = excluded.draining, " +
            "started_time = excluded.started_time, heartbeat = excluded.heartbeat", ct,
            ("$n", node.Name), ("$s", node.SiloAddress), ("$u", node.InternalUrl), ("$p", node.Processes), ("$m", node.MemoryBytes),
            ("$cpu", node.CpuLoad), ("$d", node.Draining ? 1 : 0), ("$st", Time(node.StartedTime)), ("$hb", Time(node.Heartbeat)));
    }

    public async Task<IReadOnlyList<NodeInfo>> ListNodesAsync(CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Query(c, null, $"SELECT {NodeColumns} FROM nodes ORDER BY name", ReadNode, ct);
    }

    public async Task<bool> DeleteNodeAsync(string name, CancellationToken ct = default)
    {
        await using var c = await OpenAsync(ct).ConfigureAwait(false);
        return await Exec(c, null, "DELETE FROM nodes WHERE name = $n", ct, ("$n", name)) > 0;
    }

    // ---------------------------------------------------------------- plumbing

    internal static string Time(DateTimeOffset t) => t.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss.fffffff'Z'", CultureInfo.InvariantCulture);

    internal static DateTimeOffset ParseTime(string s) =>
        DateTimeOffset.Parse(s, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal);

    private static SqliteCommand Command(SqliteConnection c, SqliteTransaction? tx, string sql, (string, object?)[] parameters)
    {
        var cmd = c.CreateCommand();
        cmd.Transaction = tx;
        cmd.CommandText = sql;
        foreach (var (name, value) in parameters)
        {
            cmd.Parameters.AddWithValue(name, value ?? DBNull.Value);
        }
        return cmd;
    }

    private static async Task<int> Exec(SqliteConnection c, SqliteTransaction? tx, string sql, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = Command(c, tx, sql, parameters);
        return await cmd.ExecuteNonQueryAsync(ct);
    }

    private static async Task<T?> Scalar<T>(SqliteConnection c, SqliteTransaction? tx, string sql, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = Command(c, tx, sql, parameters);
        var value = await cmd.ExecuteScalarAsync(ct);
        if (value is null or DBNull)
        {
            return default;
        }
        var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        return (T)Convert.ChangeType(value, target, CultureInfo.InvariantCulture);
    }

    private static async Task<List<T>> Query<T>(SqliteConnection c, SqliteTransaction? tx, string sql, Func<SqliteDataReader, T> read, CancellationToken ct, params (string, object?)[] parameters)
    {
        await using var cmd = Command(c, tx, sql, parameters);
        await using var reader = await cmd.ExecuteReaderAsync(ct);
        var list = new List<T>();
        while (await reader.ReadAsync(ct))
        {
            list.Add(read(reader));
        }
        return list;
    }
}
