namespace Connect.Data;

/// <summary>Where the catalog and the cluster's Orleans tables live, config section "Storage".</summary>
public sealed class StorageOptions
{
    public const string Sqlite = "sqlite";
    public const string Postgres = "postgres";

    /// <summary>
    /// "sqlite" (the default: a single node, the catalog in the data directory, nothing to install) or "postgres"
    /// (cluster mode: catalog, Orleans membership, reminders and grain state in one PostgreSQL database).
    /// </summary>
    public string Provider { get; set; } = Sqlite;

    /// <summary>Npgsql connection string, required with Provider=postgres (e.g. "Host=db;Database=connect;Username=connect;Password=…"). Default none.</summary>
    public string? ConnectionString { get; set; }

    public bool IsPostgres => string.Equals(Provider, Postgres, StringComparison.OrdinalIgnoreCase);

    public IEnumerable<string> Validate()
    {
        if (!string.Equals(Provider, Sqlite, StringComparison.OrdinalIgnoreCase) && !IsPostgres)
            yield return $"Storage:Provider must be \"{Sqlite}\" or \"{Postgres}\", not \"{Provider}\".";
        if (IsPostgres && string.IsNullOrWhiteSpace(ConnectionString))
            yield return "Storage:ConnectionString must be set when Storage:Provider is postgres.";
        if (IsPostgres && !string.IsNullOrWhiteSpace(ConnectionString))
        {
            string? problem = null;
            try
            {
                _ = new Npgsql.NpgsqlConnectionStringBuilder(ConnectionString);
            }
            catch (ArgumentException e)
            {
                problem = e.Message;
            }
            if (problem is not null) yield return "Storage:ConnectionString is not a valid PostgreSQL connection string: " + problem;
        }
    }
}
