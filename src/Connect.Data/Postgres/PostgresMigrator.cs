using System.Diagnostics;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace Connect.Data.Postgres;

/// <summary>
/// Applies versioned, forward-only migration streams to a PostgreSQL database. Every node runs this at start, often at
/// the same moment: the whole run holds one advisory lock, so one node migrates while the others wait and then find
/// nothing left to do. Each migration commits in one transaction with its row in <c>connect_schema_migrations</c>, so a
/// failed migration leaves neither its changes nor its record.
/// </summary>
internal static partial class PostgresMigrator
{
    /// <summary>The advisory lock every node takes to migrate: an arbitrary constant ("Connect" in ASCII), the same in every release.</summary>
    internal const long LockKey = 0x0043_6F6E_6E65_6374;

    internal const string HistoryTable = "connect_schema_migrations";

    /// <summary>Runs every stream in order on <paramref name="connection"/> (open, no transaction); returns how many migrations it applied.</summary>
    public static async Task<int> RunAsync(NpgsqlConnection connection, IReadOnlyList<(string Stream, IReadOnlyList<(int Version, string Sql)> Migrations)> streams,
        ILogger logger, CancellationToken ct)
    {
        foreach (var (stream, migrations) in streams)
        {
            CheckOrder(stream, migrations);
        }

        // A session lock rather than a transaction lock: the run spans several transactions. Waiting has no time limit
        // (the holder is migrating; if it dies its session ends and the lock with it), but the caller can cancel.
        await ExecAsync(connection, "SELECT pg_advisory_lock(@key)", ct, new NpgsqlParameter("key", LockKey));
        var applied = 0;
        try
        {
            await ExecAsync(connection,
                $"CREATE TABLE IF NOT EXISTS {HistoryTable} (stream text NOT NULL, version integer NOT NULL, " +
                "applied_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (stream, version))", ct);
            var done = new HashSet<(string, int)>();
            await using (var read = new NpgsqlCommand($"SELECT stream, version FROM {HistoryTable}", connection))
            await using (var reader = await read.ExecuteReaderAsync(ct))
            {
                while (await reader.ReadAsync(ct))
                {
                    done.Add((reader.GetString(0), reader.GetInt32(1)));
                }
            }

            foreach (var (stream, migrations) in streams)
            {
                foreach (var (version, sql) in migrations)
                {
                    if (done.Contains((stream, version)))
                    {
                        continue;
                    }
                    var watch = Stopwatch.StartNew();
                    await using (var tx = await connection.BeginTransactionAsync(ct))
                    {
                        await ExecAsync(connection, sql, ct);
                        await ExecAsync(connection, $"INSERT INTO {HistoryTable} (stream, version) VALUES (@stream, @version)", ct,
                            new NpgsqlParameter("stream", stream), new NpgsqlParameter("version", version));
                        await tx.CommitAsync(ct);
                    }
                    applied++;
                    LogApplied(logger, stream, version, watch.ElapsedMilliseconds);
                }
            }
        }
        finally
        {
            if (connection.FullState == System.Data.ConnectionState.Open)
            {
                // Not cancellable: a lock left behind would hold up every other node until this session ends.
                await ExecAsync(connection, "SELECT pg_advisory_unlock(@key)", CancellationToken.None, new NpgsqlParameter("key", LockKey));
            }
        }
        return applied;
    }

    private static void CheckOrder(string stream, IReadOnlyList<(int Version, string Sql)> migrations)
    {
        for (var i = 0; i < migrations.Count; i++)
        {
            if (migrations[i].Version < 1 || (i > 0 && migrations[i].Version <= migrations[i - 1].Version))
            {
                throw new InvalidOperationException($"migration stream \"{stream}\" must list positive versions in increasing order; version {migrations[i].Version} is out of place");
            }
        }
    }

    private static async Task ExecAsync(NpgsqlConnection connection, string sql, CancellationToken ct, params NpgsqlParameter[] parameters)
    {
        await using var cmd = new NpgsqlCommand(sql, connection);
        // A migration (or the wait for another node's) may rightly take longer than the usual command timeout.
        cmd.CommandTimeout = 0;
        cmd.Parameters.AddRange(parameters);
        await cmd.ExecuteNonQueryAsync(ct);
    }

    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Applied PostgreSQL migration {Stream} {Version} in {ElapsedMs} ms")]
    private static partial void LogApplied(ILogger logger, string stream, int version, long elapsedMs);
}
