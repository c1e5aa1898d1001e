namespace Connect.Data.Sqlite;

/// <summary>
/// Forward-only migrations for the embedded catalog. A migration is never edited once released: add a
/// new one. Each runs in its own transaction together with the row that records it.
/// </summary>
internal static class SqliteSchema
{
    public static readonly IReadOnlyList<(int Version, string Sql)> Migrations =
    [
        (1, """
            CREATE TABLE users (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                guid TEXT NOT NULL UNIQUE,
                username TEXT NOT NULL UNIQUE COLLATE NOCASE,
                email TEXT NOT NULL DEFAULT '',
                first_name TEXT NOT NULL DEFAULT '',
                last_name TEXT NOT NULL DEFAULT '',
                user_role TEXT NOT NULL,
                created_time TEXT NOT NULL,
                updated_time TEXT NOT NULL,
                active_time TEXT NULL,
                locked INTEGER NOT NULL DEFAULT 0,
                confirmed INTEGER NOT NULL DEFAULT 1
            );
            CREATE TABLE api_keys (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                user_guid TEXT NOT NULL REFERENCES users(guid) ON DELETE CASCADE,
                name TEXT NOT NULL,
                key_hash TEXT NOT NULL UNIQUE,
                created_time TEXT NOT NULL,
                last_used_time TEXT NULL
            );
            CREATE TABLE content (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                guid TEXT NOT NULL UNIQUE,
                name TEXT NOT NULL,
                title TEXT NOT NULL DEFAULT '',
                description TEXT NOT NULL DEFAULT '',
                access_type TEXT NOT NULL,
                locked INTEGER NOT NULL DEFAULT 0,
                locked_message TEXT NOT NULL DEFAULT '',
                connection_timeout INTEGER NULL,
                read_timeout INTEGER NULL,
                init_timeout INTEGER NULL,
                idle_timeout INTEGER NULL,
                max_processes INTEGER NULL,
                min_processes INTEGER NULL,
                max_conns_per_process INTEGER NULL,
                load_factor REAL NULL,
                owner_guid TEXT NOT NULL REFERENCES users(guid),
                created_time TEXT NOT NULL,
                last_deployed_time TEXT NULL,
                bundle_id INTEGER NULL,
                app_mode TEXT NOT NULL DEFAULT 'unknown',
                content_category TEXT NOT NULL DEFAULT '',
                py_version TEXT NULL,
                entrypoint TEXT NULL,
                row_version INTEGER NOT NULL DEFAULT 1,
                UNIQUE (owner_guid, name)
            );
            CREATE TABLE bundles (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                content_guid TEXT NOT NULL REFERENCES content(guid) ON DELETE CASCADE,
                created_time TEXT NOT NULL,
                created_by TEXT NULL,
                size INTEGER NOT NULL,
                md5 TEXT NOT NULL,
                sha1 TEXT NOT NULL,
                py_version TEXT NULL
            );
            CREATE INDEX bundles_content ON bundles(content_guid);
            CREATE TABLE content_environment (
                content_guid TEXT NOT NULL REFERENCES content(guid) ON DELETE CASCADE,
                name TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (content_guid, name)
            );
            CREATE TABLE tasks (
                id TEXT PRIMARY KEY,
                content_guid TEXT NULL REFERENCES content(guid) ON DELETE CASCADE,
                user_guid TEXT NULL,
                kind TEXT NOT NULL,
                created_time TEXT NOT NULL,
                finished INTEGER NOT NULL DEFAULT 0,
                code INTEGER NOT NULL DEFAULT 0,
                error TEXT NOT NULL DEFAULT '',
                finished_time TEXT NULL
            );
            CREATE TABLE task_output (
                task_id TEXT NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
                line_no INTEGER NOT NULL,
                line TEXT NOT NULL,
                PRIMARY KEY (task_id, line_no)
            );
            CREATE TABLE jobs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                job_key TEXT NOT NULL UNIQUE,
                content_guid TEXT NOT NULL REFERENCES content(guid) ON DELETE CASCADE,
                bundle_id INTEGER NULL,
                pid INTEGER NULL,
                tag TEXT NOT NULL,
                start_time TEXT NOT NULL,
                end_time TEXT NULL,
                exit_code INTEGER NULL,
                status INTEGER NOT NULL DEFAULT 0,
                hostname TEXT NOT NULL,
                log_file TEXT NULL
            );
            CREATE INDEX jobs_content ON jobs(content_guid);
            """),
        (2, """
            ALTER TABLE tasks ADD COLUMN hostname TEXT NULL;
            CREATE INDEX tasks_unfinished ON tasks(hostname) WHERE finished = 0;
            """),
        (3, """
            ALTER TABLE bundles ADD COLUMN source TEXT NULL;
            ALTER TABLE bundles ADD COLUMN source_repo TEXT NULL;
            ALTER TABLE bundles ADD COLUMN source_branch TEXT NULL;
            ALTER TABLE bundles ADD COLUMN source_commit TEXT NULL;
            """),
        // A key confined to one content item (a content process's CONNECT_API_KEY); NULL acts as its user everywhere.
        // It goes with its item: a key for content that no longer exists must not linger.
        (4, """
            ALTER TABLE api_keys ADD COLUMN content_guid TEXT NULL REFERENCES content(guid) ON DELETE CASCADE;
            """),
        // The node registry: one row per node, rewritten by its node about once a second.
        (5, """
            CREATE TABLE nodes (
                name TEXT PRIMARY KEY,
                silo_address TEXT NOT NULL,
                internal_url TEXT NOT NULL,
                processes INTEGER NOT NULL,
                memory_bytes INTEGER NOT NULL,
                cpu_load REAL NOT NULL,
                draining INTEGER NOT NULL,
                started_time TEXT NOT NULL,
                heartbeat TEXT NOT NULL
            );
            """),
    ];
}
