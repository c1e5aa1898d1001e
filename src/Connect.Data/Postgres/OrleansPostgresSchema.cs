namespace Connect.Data.Postgres;

/// <summary>
/// The tables and the <c>OrleansQuery</c> rows that Orleans' ADO.NET clustering, reminder and grain-storage providers
/// need on PostgreSQL (the packages ship no scripts). Applied by the PostgreSQL migration runner as their own stream.
/// </summary>
/// <remarks>
/// <para>
/// The providers know nothing of our tables: at start each reads <c>SELECT QueryKey, QueryText FROM OrleansQuery</c> and
/// from then on runs those texts by key, binding its own parameters (<c>@DeploymentId</c>, <c>@Version</c>, …) and reading
/// result columns by name. So table and column names here are ours (snake_case, <c>orleans_</c> prefix, beside the
/// catalog in the same database); what is fixed is the key set, the parameter names and types, the result column
/// names, and the meaning of versions. Orleans 10.4.2 binds DateTime parameters as <c>timestamptz</c> (UTC), strings as
/// <c>text</c>, hashes as <c>integer</c> (a uint reinterpreted as int) and grain key halves as <c>bigint</c>.
/// </para>
/// <para>
/// Every statement is a single SQL statement (data-modifying CTEs where a check and a change must be one step), so it
/// is atomic in autocommit, which is how the providers run them.
/// </para>
/// </remarks>
public static class OrleansPostgresSchema
{
    /// <summary>The migration stream these belong to, separate from the catalog's.</summary>
    public const string Stream = "orleans";

    /// <summary>Forward-only, each idempotent (safe to run again on a database that has it).</summary>
    public static IReadOnlyList<(int Version, string Sql)> Migrations { get; } =
    [
        (1, Membership),
        (2, Reminders),
        (3, GrainStorage),
    ];

    // Query texts are dollar-quoted with this tag so they can hold quotes and semicolons verbatim.
    private const string Tag = "$orleans$";

    /// <summary>
    /// Clustering. The version row per deployment (cluster id) is the table's optimistic-concurrency token: every insert
    /// or update of a silo row must bump it from the version the silo last read, in the same statement, or do nothing
    /// and answer false. Silo status values are Orleans' SiloStatus numbers (3 = Active, 6 = Dead).
    /// </summary>
    private const string Membership = $$"""
        CREATE TABLE IF NOT EXISTS OrleansQuery (
            QueryKey varchar(64) NOT NULL PRIMARY KEY,
            QueryText text NOT NULL
        );

        CREATE TABLE IF NOT EXISTS orleans_membership_version (
            deployment_id text NOT NULL PRIMARY KEY,
            version integer NOT NULL DEFAULT 0,
            changed_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE IF NOT EXISTS orleans_membership (
            deployment_id text NOT NULL REFERENCES orleans_membership_version (deployment_id) ON DELETE CASCADE,
            address text NOT NULL,
            port integer NOT NULL,
            generation integer NOT NULL,
            silo_name text NOT NULL,
            host_name text NOT NULL,
            status integer NOT NULL,
            proxy_port integer NOT NULL,
            suspect_times text NULL,
            start_time timestamptz NOT NULL,
            i_am_alive_time timestamptz NOT NULL,
            PRIMARY KEY (deployment_id, address, port, generation)
        );

        INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
        ('InsertMembershipVersionKey', {{Tag}}
            WITH created AS (
                INSERT INTO orleans_membership_version (deployment_id) VALUES (@DeploymentId)
                ON CONFLICT (deployment_id) DO NOTHING
                RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM created);
        {{Tag}}),
        ('MembershipReadAllKey', {{Tag}}
            SELECT v.version AS "Version",
                   m.address AS "Address", m.port AS "Port", m.generation AS "Generation",
                   m.silo_name AS "SiloName", m.host_name AS "HostName", m.status AS "Status",
                   m.proxy_port AS "ProxyPort", m.suspect_times AS "SuspectTimes",
                   m.start_time AS "StartTime", m.i_am_alive_time AS "IAmAliveTime"
            FROM orleans_membership_version v
            LEFT JOIN orleans_membership m ON m.deployment_id = v.deployment_id
            WHERE v.deployment_id = @DeploymentId;
        {{Tag}}),
        ('MembershipReadRowKey', {{Tag}}
            SELECT v.version AS "Version",
                   m.address AS "Address", m.port AS "Port", m.generation AS "Generation",
                   m.silo_name AS "SiloName", m.host_name AS "HostName", m.status AS "Status",
                   m.proxy_port AS "ProxyPort", m.suspect_times AS "SuspectTimes",
                   m.start_time AS "StartTime", m.i_am_alive_time AS "IAmAliveTime"
            FROM orleans_membership_version v
            LEFT JOIN orleans_membership m ON m.deployment_id = v.deployment_id
                AND m.address = @Address AND m.port = @Port AND m.generation = @Generation
            WHERE v.deployment_id = @DeploymentId;
        {{Tag}}),
        ('InsertMembershipKey', {{Tag}}
            WITH bumped AS (
                UPDATE orleans_membership_version
                SET version = version + 1, changed_at = now()
                WHERE deployment_id = @DeploymentId AND version = @Version
                  AND NOT EXISTS (
                      SELECT 1 FROM orleans_membership
                      WHERE deployment_id = @DeploymentId AND address = @Address AND port = @Port AND generation = @Generation)
                RETURNING deployment_id
            ), inserted AS (
                INSERT INTO orleans_membership (deployment_id, address, port, generation, silo_name, host_name, status,
                                                proxy_port, suspect_times, start_time, i_am_alive_time)
                SELECT deployment_id, @Address, @Port, @Generation, @SiloName, @HostName, @Status,
                       @ProxyPort, NULL, @StartTime, @IAmAliveTime
                FROM bumped
                ON CONFLICT DO NOTHING
                RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM inserted);
        {{Tag}}),
        ('UpdateMembershipKey', {{Tag}}
            WITH bumped AS (
                UPDATE orleans_membership_version
                SET version = version + 1, changed_at = now()
                WHERE deployment_id = @DeploymentId AND version = @Version
                  AND EXISTS (
                      SELECT 1 FROM orleans_membership
                      WHERE deployment_id = @DeploymentId AND address = @Address AND port = @Port AND generation = @Generation)
                RETURNING deployment_id
            ), updated AS (
                UPDATE orleans_membership m
                SET status = @Status, suspect_times = @SuspectTimes, i_am_alive_time = @IAmAliveTime
                FROM bumped
                WHERE m.deployment_id = bumped.deployment_id
                  AND m.address = @Address AND m.port = @Port AND m.generation = @Generation
                RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM updated);
        {{Tag}}),
        ('UpdateIAmAlivetimeKey', {{Tag}}
            UPDATE orleans_membership
            SET i_am_alive_time = @IAmAliveTime
            WHERE deployment_id = @DeploymentId AND address = @Address AND port = @Port AND generation = @Generation;
        {{Tag}}),
        ('GatewaysQueryKey', {{Tag}}
            SELECT address AS "Address", proxy_port AS "ProxyPort", generation AS "Generation"
            FROM orleans_membership
            WHERE deployment_id = @DeploymentId AND status = @Status AND proxy_port > 0;
        {{Tag}}),
        ('DeleteMembershipTableEntriesKey', {{Tag}}
            DELETE FROM orleans_membership_version WHERE deployment_id = @DeploymentId;
        {{Tag}}),
        ('CleanupDefunctSiloEntriesKey', {{Tag}}
            DELETE FROM orleans_membership
            WHERE deployment_id = @DeploymentId AND status = 6 AND i_am_alive_time < @IAmAliveTime;
        {{Tag}}),
        ('CleanupDefunctSiloEntryKey', {{Tag}}
            DELETE FROM orleans_membership
            WHERE deployment_id = @DeploymentId AND address = @Address AND port = @Port AND generation = @Generation
              AND status = 6 AND start_time = @StartTime AND i_am_alive_time = @IAmAliveTime
              AND COALESCE(suspect_times, '') = COALESCE(@SuspectTimes, '');
        {{Tag}})
        ON CONFLICT (QueryKey) DO UPDATE SET QueryText = EXCLUDED.QueryText;
        """;

    /// <summary>
    /// Reminders, one row per (grain, reminder name) of a service. The version is the reminder's ETag: an upsert bumps it,
    /// a delete needs the current one. Ranged reads serve the reminder service's share of the hash ring: (begin, end],
    /// compared as signed integers because Orleans passes the uint hashes reinterpreted as int, and a range whose begin
    /// is not below its end in that order wraps around (ReadRangeRows2Key).
    /// </summary>
    private const string Reminders = $$"""
        CREATE TABLE IF NOT EXISTS orleans_reminders (
            service_id text NOT NULL,
            grain_id text NOT NULL,
            reminder_name text NOT NULL,
            start_time timestamptz NOT NULL,
            period bigint NOT NULL,
            grain_hash integer NOT NULL,
            version integer NOT NULL,
            PRIMARY KEY (service_id, grain_id, reminder_name)
        );

        CREATE INDEX IF NOT EXISTS orleans_reminders_ring ON orleans_reminders (service_id, grain_hash);

        INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
        ('ReadReminderRowsKey', {{Tag}}
            SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
                   period AS "Period", version AS "Version"
            FROM orleans_reminders
            WHERE service_id = @ServiceId AND grain_id = @GrainId;
        {{Tag}}),
        ('ReadReminderRowKey', {{Tag}}
            SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
                   period AS "Period", version AS "Version"
            FROM orleans_reminders
            WHERE service_id = @ServiceId AND grain_id = @GrainId AND reminder_name = @ReminderName;
        {{Tag}}),
        ('ReadRangeRows1Key', {{Tag}}
            SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
                   period AS "Period", version AS "Version"
            FROM orleans_reminders
            WHERE service_id = @ServiceId AND grain_hash > @BeginHash AND grain_hash <= @EndHash;
        {{Tag}}),
        ('ReadRangeRows2Key', {{Tag}}
            SELECT grain_id AS "GrainId", reminder_name AS "ReminderName", start_time AS "StartTime",
                   period AS "Period", version AS "Version"
            FROM orleans_reminders
            WHERE service_id = @ServiceId AND (grain_hash > @BeginHash OR grain_hash <= @EndHash);
        {{Tag}}),
        ('UpsertReminderRowKey', {{Tag}}
            INSERT INTO orleans_reminders (service_id, grain_id, reminder_name, start_time, period, grain_hash, version)
            VALUES (@ServiceId, @GrainId, @ReminderName, @StartTime, @Period, @GrainHash, 0)
            ON CONFLICT (service_id, grain_id, reminder_name) DO UPDATE
            SET start_time = EXCLUDED.start_time, period = EXCLUDED.period, grain_hash = EXCLUDED.grain_hash,
                version = orleans_reminders.version + 1
            RETURNING version AS "Version";
        {{Tag}}),
        ('DeleteReminderRowKey', {{Tag}}
            WITH removed AS (
                DELETE FROM orleans_reminders
                WHERE service_id = @ServiceId AND grain_id = @GrainId AND reminder_name = @ReminderName
                  AND version = @Version
                RETURNING 1
            )
            SELECT EXISTS (SELECT 1 FROM removed);
        {{Tag}}),
        ('DeleteReminderRowsKey', {{Tag}}
            DELETE FROM orleans_reminders WHERE service_id = @ServiceId;
        {{Tag}})
        ON CONFLICT (QueryKey) DO UPDATE SET QueryText = EXCLUDED.QueryText;
        """;

    // Orleans hands storage a grain key as two bigint halves (a GUID's, or 0 and a long) plus an optional string (the key
    // extension, or the whole key of a string-keyed grain). One text column holds all three: '#' marks an extension, so a
    // missing one and an empty one stay distinct, and a plain primary key can arbitrate concurrent first writes.
    private const string GrainKey = "(@GrainIdN0::text || ',' || @GrainIdN1::text || COALESCE('#' || @GrainIdExtensionString, ''))";

    /// <summary>
    /// Grain state, one row per (service, state, grain key); <c>@GrainTypeString</c> is the name the state is stored under.
    /// The version is the state's ETag: a write must carry the version it read (or none, for a state never written),
    /// and answers the new version; answering nothing (or the old version) makes Orleans throw
    /// InconsistentStateException. The hash parameters Orleans also sends are not needed: the key itself is indexed.
    /// </summary>
    private const string GrainStorage = $$"""
        CREATE TABLE IF NOT EXISTS orleans_storage (
            service_id text NOT NULL,
            grain_type text NOT NULL,
            grain_key text NOT NULL,
            payload bytea NULL,
            version integer NOT NULL,
            modified_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (service_id, grain_type, grain_key)
        );

        INSERT INTO OrleansQuery (QueryKey, QueryText) VALUES
        ('ReadFromStorageKey', {{Tag}}
            SELECT payload AS "PayloadBinary", version AS "Version"
            FROM orleans_storage
            WHERE service_id = @ServiceId AND grain_type = @GrainTypeString AND grain_key = {{GrainKey}};
        {{Tag}}),
        ('WriteToStorageKey', {{Tag}}
            WITH updated AS (
                UPDATE orleans_storage
                SET payload = @PayloadBinary, version = version + 1, modified_at = now()
                WHERE @GrainStateVersion IS NOT NULL
                  AND service_id = @ServiceId AND grain_type = @GrainTypeString AND grain_key = {{GrainKey}}
                  AND version = @GrainStateVersion
                RETURNING version
            ), inserted AS (
                INSERT INTO orleans_storage (service_id, grain_type, grain_key, payload, version)
                SELECT @ServiceId, @GrainTypeString, {{GrainKey}}, @PayloadBinary, 1
                WHERE @GrainStateVersion IS NULL
                ON CONFLICT (service_id, grain_type, grain_key) DO NOTHING
                RETURNING version
            )
            SELECT version AS "NewGrainStateVersion" FROM updated
            UNION ALL
            SELECT version FROM inserted;
        {{Tag}}),
        ('ClearStorageKey', {{Tag}}
            UPDATE orleans_storage
            SET payload = NULL, version = version + 1, modified_at = now()
            WHERE service_id = @ServiceId AND grain_type = @GrainTypeString AND grain_key = {{GrainKey}}
              AND version = @GrainStateVersion
            RETURNING version AS "NewGrainStateVersion";
        {{Tag}}),
        ('DeleteStorageKey', {{Tag}}
            DELETE FROM orleans_storage
            WHERE service_id = @ServiceId AND grain_type = @GrainTypeString AND grain_key = {{GrainKey}}
              AND version = @GrainStateVersion
            RETURNING version + 1 AS "NewGrainStateVersion";
        {{Tag}})
        ON CONFLICT (QueryKey) DO UPDATE SET QueryText = EXCLUDED.QueryText;
        """;
}
