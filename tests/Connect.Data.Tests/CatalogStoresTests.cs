using Connect.Data.Postgres;
using Connect.Data.Sqlite;

namespace Connect.Data.Tests;

public sealed class CatalogStoresTests
{
    [Fact]
    public void Sqlite_IsTheDefault()
    {
        var store = CatalogStores.Create(new StorageOptions(), Path.Combine(Path.GetTempPath(), $"never-opened-{Guid.NewGuid():N}.db"));
        Assert.IsType<SqliteCatalogStore>(store);
        Assert.IsType<SqliteCatalogStore>(CatalogStores.Create(new StorageOptions { Provider = "SQLite" }, "x.db"));
    }

    [Fact]
    public async Task Postgres_WhenConfigured()
    {
        var store = CatalogStores.Create(new StorageOptions { Provider = "Postgres", ConnectionString = "Host=db;Database=connect;Username=connect" }, "unused.db");
        var postgres = Assert.IsType<PostgresCatalogStore>(store);
        await postgres.DisposeAsync();
    }

    [Theory]
    [InlineData("mysql", null)]
    [InlineData("postgres", null)]
    [InlineData("postgres", " ")]
    public void InvalidOptions_AreRefused(string provider, string? connectionString)
    {
        var e = Assert.Throws<ArgumentException>(() => CatalogStores.Create(new StorageOptions { Provider = provider, ConnectionString = connectionString }, "x.db"));
        Assert.Contains("Storage:", e.Message, StringComparison.Ordinal);
    }
}
