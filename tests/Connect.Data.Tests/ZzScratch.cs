using Connect.Core.Model;
using Connect.Data.Sqlite;
namespace Connect.Data.Tests;
public sealed class ZzScratch
{
    [Fact]
    public async Task Race()
    {
        var dir = Directory.CreateTempSubdirectory("scratch-").FullName;
        var failures = new List<string>();
        for (var round = 0; round < 100; round++)
        {
            var path = Path.Combine(dir, $"r{round}.db");
            await new SqliteCatalogStore(path).MigrateAsync();
            var stores = Enumerable.Range(0, 8).Select(_ => new SqliteCatalogStore(path)).ToArray();
            var results = await Task.WhenAll(Enumerable.Range(0, 16).Select(i => Task.Run(async () =>
            {
                try { await stores[i % 8].CreateUserAsync(new NewUser("racer", "viewer", DateTimeOffset.UtcNow)); return "ok"; }
                catch (Exception e) { return e.GetType().Name + ": " + e.Message; }
            })));
            failures.AddRange(results.Where(r => r != "ok" && !r.StartsWith("CatalogConflictException")));
        }
        Assert.Fail(string.Join("\n", failures.Distinct()) + $"\ncount={failures.Count}");
    }
}
