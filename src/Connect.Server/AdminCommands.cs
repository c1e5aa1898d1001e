using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data;
using Connect.Data.Security;


namespace Connect.Server;

/// <summary>
/// <c>connect admin …</c>: user and key management on the node's own catalog, for when no administrator exists
/// yet or the API is unreachable. Reads the same configuration as the server (e.g. --Connect:DataDir=…).
/// </summary>
public static class AdminCommands
{
    private const string Usage = """
        usage: connect admin <command> [options] [--Connect:DataDir=<dir>]
          create-user --username NAME [--role administrator|publisher|viewer] [--email EMAIL] [--first-name F] [--last-name L]
          create-key  --username NAME [--name KEYNAME]      prints a new API key for the user (shown once)
          list-users
        """;

    public static async Task<int> RunAsync(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help" or "help")
        {
            await stdout.WriteLineAsync(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        var command = args[0];
        var (flags, configArgs) = ParseFlags(args[1..]);
        var configuration = new ConfigurationBuilder()
            .AddJsonFile("appsettings.json", optional: true)
            .AddEnvironmentVariables()
            .AddCommandLine(configArgs)
            .Build();
        var config = ConnectConfiguration.Bind(configuration);
        var paths = new DataPaths(config.Connect.DataDir);
        paths.EnsureCreated();
        // The same catalog the server uses: the embedded one, or the cluster's PostgreSQL.
        var store = CatalogStores.Create(config.Storage, paths.DatabaseFile);
        try
        {
            await store.MigrateAsync();
        }
        catch (CatalogUnavailableException e)
        {
            await stderr.WriteLineAsync(e.Message);
            return 1;
        }

        switch (command)
        {
            case "create-user":
                {
                    if (!flags.TryGetValue("username", out var username) || string.IsNullOrWhiteSpace(username))
                    {
                        await stderr.WriteLineAsync("create-user needs --username");
                        return 2;
                    }
                    var role = flags.GetValueOrDefault("role", UserRoles.Publisher);
                    if (!UserRoles.IsValid(role))
                    {
                        await stderr.WriteLineAsync($"unknown role '{role}': use administrator, publisher or viewer");
                        return 2;
                    }
                    try
                    {
                        var user = await store.CreateUserAsync(new NewUser(username, role, DateTimeOffset.UtcNow)
                        {
                            Email = flags.GetValueOrDefault("email", ""),
                            FirstName = flags.GetValueOrDefault("first-name", ""),
                            LastName = flags.GetValueOrDefault("last-name", ""),
                        });
                        await stdout.WriteLineAsync($"created {user.Role} '{user.Username}' ({user.Guid})");
                        return 0;
                    }
                    catch (CatalogConflictException e)
                    {
                        await stderr.WriteLineAsync(e.Message);
                        return 1;
                    }
                }
            case "create-key":
                {
                    if (!flags.TryGetValue("username", out var username))
                    {
                        await stderr.WriteLineAsync("create-key needs --username");
                        return 2;
                    }
                    var user = await store.GetUserByNameAsync(username);
                    if (user is null)
                    {
                        await stderr.WriteLineAsync($"no user named '{username}'");
                        return 1;
                    }
                    var key = ApiKeys.Generate();
                    await store.CreateApiKeyAsync(user.Guid, flags.GetValueOrDefault("name", "admin-cli"), ApiKeys.Hash(key));
                    await stdout.WriteLineAsync(key);
                    return 0;
                }
            case "list-users":
                foreach (var user in await store.ListUsersAsync())
                {
                    await stdout.WriteLineAsync($"{user.Username}\t{user.Role}\t{user.Guid}{(user.Locked ? "\tlocked" : "")}");
                }
                return 0;
            default:
                await stderr.WriteLineAsync($"unknown admin command '{command}'");
                await stderr.WriteLineAsync(Usage);
                return 2;
        }
    }

    /// <summary>Splits <c>--name value</c> flags from configuration arguments (<c>--Section:Key=value</c>).</summary>
    private static (Dictionary<string, string> Flags, string[] ConfigArgs) ParseFlags(string[] args)
    {
        var flags = new Dictionary<string, string>(StringComparer.Ordinal);
        var config = new List<string>();
        for (var i = 0; i < args.Length; i++)
        {
            var a = args[i];
            if (a.StartsWith("--", StringComparison.Ordinal) && (a.Contains(':') || a.Contains('=')))
            {
                config.Add(a);
            }
            else if (a.StartsWith("--", StringComparison.Ordinal) && i + 1 < args.Length)
            {
                flags[a[2..]] = args[++i];
            }
        }
        return (flags, config.ToArray());
    }
}
