namespace Connect.Data.Postgres;

/// <summary>
/// Forward-only migrations of the catalog on PostgreSQL (stream "catalog"), the same model as the SQLite schema with
/// native types: <c>uuid</c> GUIDs, <c>timestamptz</c> times (microseconds), <c>bigint</c> identities, <c>boolean</c> flags.
/// A migration is never edited once released: add a new one. The runner applies each in its own transaction with its record.
/// </summary>
public static class PostgresSchema
{
    public const string Stream = "catalog";

    public static IReadOnlyList<(int Version, string Sql)> Migrations { get; } =
    [
        // The catalog as SQLite's migrations 1–4 leave it. Constraint names are fixed because the store maps unique
        // violations to CatalogConflictException by name.
        (1, """
            CREATE TABLE users (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                guid uuid NOT NULL CONSTRAINT users_guid_key UNIQUE,
                username text NOT NULL,
                email text NOT NULL DEFAULT '',
                first_name text NOT NULL DEFAULT '',
                last_name text NOT NULL DEFAULT '',
                user_role text NOT NULL,
                created_time timestamptz NOT NULL,
                updated_time timestamptz NOT NULL,
                active_time timestamptz NULL,
                locked boolean NOT NULL DEFAULT false,
                confirmed boolean NOT NULL DEFAULT true
            );
            -- Usernames are unique ignoring case (as SQLite's NOCASE), and found by the same expression.
            CREATE UNIQUE INDEX users_username_lower ON users (lower(username));

            CREATE TABLE content (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                guid uuid NOT NULL CONSTRAINT content_guid_key UNIQUE,
                name text NOT NULL,
                title text NOT NULL DEFAULT '',
                description text NOT NULL DEFAULT '',
                access_type text NOT NULL,
                locked boolean NOT NULL DEFAULT false,
                locked_message text NOT NULL DEFAULT '',
                connection_timeout integer NULL,
                read_timeout integer NULL,
                init_timeout integer NULL,
                idle_timeout integer NULL,
                max_processes integer NULL,
                min_processes integer NULL,
                max_conns_per_process integer NULL,
                load_factor double precision NULL,
                owner_guid uuid NOT NULL REFERENCES users(guid),
                created_time timestamptz NOT NULL,
                last_deployed_time timestamptz NULL,
                bundle_id bigint NULL,
                app_mode text NOT NULL DEFAULT 'unknown',
                content_category text NOT NULL DEFAULT '',
                py_version text NULL,
                entrypoint text NULL,
                row_version bigint NOT NULL DEFAULT 1,
                CONSTRAINT content_owner_name UNIQUE (owner_guid, name)
            );
            -- Every start asks which items need processes; few do.
            CREATE INDEX content_needing_processes ON content (id) WHERE min_processes > 0 AND bundle_id IS NOT NULL;

            -- content_guid confines a key to one item (a content process's CONNECT_API_KEY) and goes with it.
            CREATE TABLE api_keys (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                user_guid uuid NOT NULL REFERENCES users(guid) ON DELETE CASCADE,
                name text NOT NULL,
                key_hash text NOT NULL CONSTRAINT api_keys_key_hash_key UNIQUE,
                created_time timestamptz NOT NULL,
                last_used_time timestamptz NULL,
                content_guid uuid NULL REFERENCES content(guid) ON DELETE CASCADE
            );
            CREATE INDEX api_keys_user ON api_keys (user_guid);
            CREATE INDEX api_keys_name ON api_keys (name);
            CREATE INDEX api_keys_content ON api_keys (content_guid) WHERE content_guid IS NOT NULL;

            CREATE TABLE bundles (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                content_guid uuid NOT NULL REFERENCES content(guid) ON DELETE CASCADE,
                created_time timestamptz NOT NULL,
                created_by uuid NULL,
                size bigint NOT NULL,
                md5 text NOT NULL,
                sha1 text NOT NULL,
                py_version text NULL,
                source text NULL,
                source_repo text NULL,
                source_branch text NULL,
                source_commit text NULL
            );
            CREATE INDEX bundles_content ON bundles (content_guid);

            CREATE TABLE content_environment (
                content_guid uuid NOT NULL REFERENCES content(guid) ON DELETE CASCADE,
                name text NOT NULL,
                value bytea NOT NULL,
                PRIMARY KEY (content_guid, name)
            );

            CREATE TABLE tasks (
                id text PRIMARY KEY,
                content_guid uuid NULL REFERENCES content(guid) ON DELETE CASCADE,
                user_guid uuid NULL,
                kind text NOT NULL,
                created_time timestamptz NOT NULL,
                finished boolean NOT NULL DEFAULT false,
                code integer NOT NULL DEFAULT 0,
                error text NOT NULL DEFAULT '',
                finished_time timestamptz NULL,
                hostname text NULL
            );
            CREATE INDEX tasks_content ON tasks (content_guid);
            CREATE INDEX tasks_unfinished ON tasks (hostname) WHERE NOT finished;

            CREATE TABLE task_output (
                task_id text NOT NULL REFERENCES tasks(id) ON DELETE CASCADE,
                line_no integer NOT NULL,
                line text NOT NULL,
                PRIMARY KEY (task_id, line_no)
            );

            CREATE TABLE jobs (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                job_key text NOT NULL CONSTRAINT jobs_job_key_key UNIQUE,
                content_guid uuid NOT NULL REFERENCES content(guid) ON DELETE CASCADE,
                bundle_id bigint NULL,
                pid integer NULL,
                tag text NOT NULL,
                start_time timestamptz NOT NULL,
                end_time timestamptz NULL,
                exit_code integer NULL,
                status integer NOT NULL DEFAULT 0,
                hostname text NOT NULL,
                log_file text NULL
            );
            CREATE INDEX jobs_content ON jobs (content_guid);
            CREATE INDEX jobs_active ON jobs (hostname) WHERE status = 0;
            """),
        // The node registry: one row per node, rewritten by its node about once a second. A small, hot table: leave
        // room on each page so the rewrite can stay on the page (a HOT update, no index write).
        (2, """
            CREATE TABLE nodes (
                name text PRIMARY KEY,
                silo_address text NOT NULL,
                internal_url text NOT NULL,
                processes integer NOT NULL,
                memory_bytes bigint NOT NULL,
                cpu_load double precision NOT NULL,
                draining boolean NOT NULL,
                started_time timestamptz NOT NULL,
                heartbeat timestamptz NOT NULL
            ) WITH (fillfactor = 50);
            """),
    ];
}
