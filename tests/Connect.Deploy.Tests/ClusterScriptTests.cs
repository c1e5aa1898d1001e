using System.Text.RegularExpressions;

namespace Connect.Deploy.Tests;

/// <summary>
/// deploy/cluster.sh without starting a cluster: it parses, its haproxy configuration is valid and round robin on
/// readiness, the settings it gives nodes are the contract's, and it behaves on an empty state. Its lifecycle with
/// stand-in nodes is tests/cluster/cluster_script_test.sh (slower; run by hand).
/// </summary>
public partial class ClusterScriptTests
{
    private static readonly string Script = Repository.Path("deploy", "cluster.sh");

    private static (int Code, string Out, string Err) RunScript(string stateDirectory, params string[] args) =>
        Repository.Run("bash", [Script, .. args], environment: new Dictionary<string, string>
        {
            ["CONNECT_CLUSTER_DIR"] = stateDirectory,
            ["CONNECT_CLUSTER_BASE_PORT"] = "21000",
        }, timeoutSeconds: 60);

    private static string EmptyStateDirectory() =>
        Path.Combine(Path.GetTempPath(), "connect-cluster-unit-" + Guid.NewGuid().ToString("N")[..10]);

    [Fact]
    public void The_script_parses()
    {
        var (code, _, err) = Repository.Run("bash", ["-n", Script]);
        Assert.True(code == 0, err);
    }

    [Fact]
    public void Haproxy_accepts_the_generated_configuration()
    {
        var haproxy = Repository.Which("haproxy") ?? throw new InvalidOperationException("haproxy is not installed (tests/run.sh installs it)");
        var (code, config, err) = RunScript(EmptyStateDirectory(), "haproxy-config", "3");
        Assert.True(code == 0, err);
        var file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, config);
            var check = Repository.Run(haproxy, ["-c", "-f", file]);
            Assert.True(check.Code == 0, check.Out + check.Err);
        }
        finally
        {
            File.Delete(file);
        }

        Assert.Contains("bind 127.0.0.1:21000", config, StringComparison.Ordinal);
        Assert.Equal(["127.0.0.1:21101", "127.0.0.1:21102", "127.0.0.1:21103"],
            Regex.Matches(config, @"^\s*server node\d+ (\S+)", RegexOptions.Multiline).Select(m => m.Groups[1].Value));
        Assert.Contains("balance roundrobin", config, StringComparison.Ordinal);
        Assert.Contains($"uri {ConfigContract.ReadyPath}", config, StringComparison.Ordinal);
        Assert.Contains("timeout tunnel", config, StringComparison.Ordinal);
        // No stickiness of any kind: any node takes any request.
        Assert.DoesNotMatch(@"(?m)^\s*(cookie|stick|stick-table|hash-type|balance (source|uri|hdr))\b", config);
    }

    [Fact]
    public void Nodes_get_the_settings_of_the_cluster_contract()
    {
        var text = File.ReadAllText(Script);
        var exported = Regex.Matches(text, @"^\s*export ([A-Za-z_][A-Za-z0-9_]*)=", RegexOptions.Multiline).Select(m => m.Groups[1].Value)
            .Concat(Regex.Matches(text, @"^\s*export (Cluster__Secret)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value))
            .Where(name => !name.StartsWith("DOTNET_", StringComparison.Ordinal))
            .ToHashSet(StringComparer.Ordinal);
        var unknown = exported.Where(name => !ConfigContract.Known(name)).ToList();
        Assert.True(unknown.Count == 0, $"cluster.sh gives nodes settings outside the contract: {string.Join(", ", unknown)}");
        Assert.Empty(ConfigContract.Required.Except(exported));
        Assert.Contains(ConfigContract.ReadyPath, text, StringComparison.Ordinal);
        Assert.Contains(ConfigContract.PingPath, text, StringComparison.Ordinal);
    }

    [Fact]
    public void Status_and_down_on_an_empty_state_say_so()
    {
        var state = EmptyStateDirectory();
        var status = RunScript(state, "status");
        Assert.Equal(1, status.Code);
        Assert.Contains($"no cluster in {state}", status.Err, StringComparison.Ordinal);
        Assert.Empty(status.Out);

        var down = RunScript(state, "down");
        Assert.Equal(0, down.Code);
        Assert.Contains("nothing to do", down.Err, StringComparison.Ordinal);
        Assert.False(Directory.Exists(state));
    }

    [Fact]
    public void Commands_check_their_arguments()
    {
        var state = EmptyStateDirectory();
        Assert.Equal(2, RunScript(state, "no-such-command").Code);
        Assert.NotEqual(0, RunScript(state, "start", "0").Code);
        Assert.NotEqual(0, RunScript(state, "kill").Code);
        Assert.False(Directory.Exists(state));
    }
}
