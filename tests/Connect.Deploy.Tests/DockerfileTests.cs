using System.Text.RegularExpressions;

namespace Connect.Deploy.Tests;

/// <summary>deploy/Dockerfile read as instructions (no docker here): the stages, what the runtime carries, its health check.</summary>
public partial class DockerfileTests
{
    private sealed record Instruction(string Keyword, string Arguments, int Stage);

    /// <summary>The instructions, continuation lines joined and comments dropped, each with the index of its stage.</summary>
    private static List<Instruction> Instructions()
    {
        var instructions = new List<Instruction>();
        var stage = -1;
        var pending = "";
        foreach (var raw in File.ReadAllLines(Repository.Path("deploy", "Dockerfile")))
        {
            var line = raw.Trim();
            if (line.StartsWith('#') || (line.Length == 0 && pending.Length == 0))
            {
                continue;
            }
            if (line.EndsWith('\\'))
            {
                pending += line[..^1] + " ";
                continue;
            }
            var text = (pending + line).Trim();
            pending = "";
            if (text.Length == 0)
            {
                continue;
            }
            var space = text.IndexOf(' ', StringComparison.Ordinal);
            var keyword = (space < 0 ? text : text[..space]).ToUpperInvariant();
            if (keyword == "FROM")
            {
                stage++;
            }
            instructions.Add(new Instruction(keyword, space < 0 ? "" : Regex.Replace(text[(space + 1)..], @"\s+", " "), stage));
        }
        return instructions;
    }

    private static List<Instruction> Stage(List<Instruction> all, int stage) => all.Where(i => i.Stage == stage).ToList();

    [Fact]
    public void Builds_with_the_sdk_and_runs_on_the_aspnet_runtime()
    {
        var all = Instructions();
        var froms = all.Where(i => i.Keyword == "FROM").Select(i => i.Arguments).ToList();
        Assert.Equal(2, froms.Count);
        Assert.Matches(@"^mcr\.microsoft\.com/dotnet/sdk:10\.0\S* AS build$", froms[0]);
        Assert.Matches(@"^mcr\.microsoft\.com/dotnet/aspnet:10\.0\S* AS runtime$", froms[1]);
        Assert.Contains(Stage(all, 0), i => i.Keyword == "RUN" && i.Arguments.Contains("dotnet publish src/Connect.Server/Connect.Server.csproj -c Release -o /app", StringComparison.Ordinal));
        Assert.Contains(Stage(all, 1), i => i.Keyword == "COPY" && i.Arguments == "--from=build /app /app");
        // The SDK the build needs is the one global.json names.
        Assert.Contains(Stage(all, 0), i => i.Keyword == "COPY" && i.Arguments.Contains("global.json", StringComparison.Ordinal));
    }

    [Fact]
    public void The_runtime_carries_what_content_and_the_sandbox_need()
    {
        var install = Assert.Single(Stage(Instructions(), 1), i => i.Keyword == "RUN" && i.Arguments.Contains("apt-get install", StringComparison.Ordinal)).Arguments;
        var packages = install.Split(' ');
        foreach (var package in new[] { "python3", "python3-venv", "bubblewrap", "util-linux", "nftables" })
        {
            Assert.Contains(package, packages);
        }
        Assert.Contains("rm -rf /var/lib/apt/lists/*", install, StringComparison.Ordinal);
    }

    [Fact]
    public void The_health_check_asks_for_liveness_on_the_listening_port()
    {
        var runtime = Stage(Instructions(), 1);
        var check = Assert.Single(runtime, i => i.Keyword == "HEALTHCHECK").Arguments;
        var env = string.Join(' ', runtime.Where(i => i.Keyword == "ENV").Select(i => i.Arguments));
        var port = Regex.Match(env, @"ASPNETCORE_URLS=http://0\.0\.0\.0:(\d+)").Groups[1].Value;
        Assert.NotEmpty(port);
        Assert.Contains($"http://127.0.0.1:{port}{ConfigContract.LivePath}", check, StringComparison.Ordinal);
        Assert.Contains(port, Assert.Single(runtime, i => i.Keyword == "EXPOSE").Arguments.Split(' '));
    }

    [Fact]
    public void The_runtime_starts_the_server_as_a_non_root_user_under_an_init()
    {
        var runtime = Stage(Instructions(), 1);
        var user = Assert.Single(runtime, i => i.Keyword == "USER").Arguments;
        Assert.DoesNotContain(user, new[] { "root", "0", "0:0" });
        var entrypoint = Assert.Single(runtime, i => i.Keyword == "ENTRYPOINT").Arguments;
        // The published dll is named after the server project's AssemblyName.
        var assembly = Regex.Match(File.ReadAllText(Repository.Path("src", "Connect.Server", "Connect.Server.csproj")), "<AssemblyName>([^<]+)</AssemblyName>").Groups[1].Value;
        Assert.Equal($"[\"/usr/bin/tini\", \"--\", \"dotnet\", \"/app/{assembly}.dll\"]", entrypoint);
        Assert.Contains("11111", Assert.Single(runtime, i => i.Keyword == "EXPOSE").Arguments.Split(' '));
    }

    [Fact]
    public void The_build_context_leaves_out_build_output()
    {
        var ignored = File.ReadAllLines(Repository.Path("deploy", "Dockerfile.dockerignore"));
        Assert.Contains("**/bin/", ignored);
        Assert.Contains("**/obj/", ignored);
        Assert.Contains(".git/", ignored);
    }
}
