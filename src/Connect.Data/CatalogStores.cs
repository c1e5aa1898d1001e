using Connect.Data.Postgres;
using Connect.Data.Sqlite;

namespace Connect.Data;

/// <summary>The one place that turns storage options into a catalog store.</summary>
public static class CatalogStores
{
    /// <summary>
    /// PostgreSQL when <paramref name="storage"/> says so (cluster mode), otherwise SQLite in <paramref name="sqliteFile"/>.
    /// Neither is migrated here: call <see cref="ICatalogStore.MigrateAsync"/> at start. The store may own a connection
    /// pool; dispose it (it is <see cref="IAsyncDisposable"/> then) when done.
    /// </summary>
    /// <exception cref="ArgumentException">the options are invalid (every problem in one message)</exception>
    public static ICatalogStore Create(StorageOptions storage, string sqliteFile)
    {
        ArgumentNullException.ThrowIfNull(storage);
        var problems = storage.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(storage));
        }
        return storage.IsPostgres ? new PostgresCatalogStore(storage.ConnectionString!) : new SqliteCatalogStore(sqliteFile);
    }
}
