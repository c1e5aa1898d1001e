using Connect.Core.Model;
using Connect.Data.Sqlite;

namespace Connect.Data.Tests;

/// <summary>The catalog holds key hashes and users: its files must be readable by the server's user only.</summary>
// Unix file modes only; CI and production hosts are Linux.
[System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
public sealed class SqliteFileModeTests : IDisposable
{
    private const UnixFileMode Mode600 = UnixFileMode.UserRead | UnixFileMode.UserWrite;
    private const UnixFileMode Mode700 = Mode600 | UnixFileMode.UserExecute;
    private const UnixFileMode Mode644 = Mode600 | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode Mode755 = Mode700 | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute;

    private readonly string _root = Directory.CreateTempSubdirectory("connect-data-modes-").FullName;

    private string Db => Path.Combine(_root, "db", "connect.db");

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public async Task A_new_catalog_and_its_wal_files_are_created_owner_only()
    {

        var store = new SqliteCatalogStore(Db);
        await store.MigrateAsync();
        // A write makes SQLite create the -wal and -shm files, if it has not already.
        await store.CreateUserAsync(new NewUser("mode-check", UserRoles.Viewer, DateTimeOffset.UtcNow));

        Assert.Equal(Mode700, File.GetUnixFileMode(Path.GetDirectoryName(Db)!));
        AssertOwnerOnlyFiles();
        Assert.True(File.Exists(Db + "-wal"), "the catalog runs in WAL mode, so its -wal file must exist to be checked");
    }

    [Fact]
    public async Task An_existing_catalog_with_looser_modes_is_tightened_at_start()
    {
        var first = new SqliteCatalogStore(Db);
        await first.MigrateAsync();
        await first.CreateUserAsync(new NewUser("mode-check", UserRoles.Viewer, DateTimeOffset.UtcNow));
        File.SetUnixFileMode(Path.GetDirectoryName(Db)!, Mode755);
        foreach (var file in CatalogFiles())
        {
            File.SetUnixFileMode(file, Mode644);
        }

        await new SqliteCatalogStore(Db).MigrateAsync();

        Assert.Equal(Mode700, File.GetUnixFileMode(Path.GetDirectoryName(Db)!));
        AssertOwnerOnlyFiles();
    }

    private IEnumerable<string> CatalogFiles() =>
        new[] { Db, Db + "-wal", Db + "-shm", Db + "-journal" }.Where(File.Exists);

    private void AssertOwnerOnlyFiles()
    {
        foreach (var file in CatalogFiles())
        {
            Assert.True(Mode600 == File.GetUnixFileMode(file), $"{Path.GetFileName(file)} is {File.GetUnixFileMode(file)}, expected 0600");
        }
    }
}
