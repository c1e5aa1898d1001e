using System.Diagnostics;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Cluster;

/// <summary>
/// A real cluster on this machine, driven through the repository's own script (deploy/cluster.sh): a throwaway
/// PostgreSQL, a shared data directory, N server processes and haproxy round-robin in front. The nodes run the
/// server this test project was built against.
/// </summary>
public sealed class LocalCluster : IAsyncDisposable
{
    private readonly string _state;
    private readonly Dictionary<string, string> _environment;

    private LocalCluster(string state, Dictionary<string, string> environment)
    {
        _state = state;
        _environment = environment;
    }

    public static string RepositoryRoot { get; } = Path.GetFullPath(Path.Combine(Bundles.SamplesDirectory, ".."));

    public static string Script => Path.Combine(RepositoryRoot, "deploy", "cluster.sh");

    public Uri LoadBalancer { get; private set; } = null!;

    public Dictionary<string, Uri> Nodes { get; } = new(StringComparer.Ordinal);

    public string AdminKey { get; private set; } = "";

    public byte[] BootstrapSecret { get; } = RandomNumberGenerator.GetBytes(32);

    public static async Task<LocalCluster> StartAsync(int nodes, IReadOnlyDictionary<string, string>? settings = null)
    {
        var state = Path.Combine(Path.GetTempPath(), "connect-cluster-test-" + Guid.NewGuid().ToString("N")[..10]);
        var cluster = new LocalCluster(state, new Dictionary<string, string>(StringComparer.Ordinal));
        cluster._environment["CONNECT_CLUSTER_DIR"] = state;
        cluster._environment["CONNECT_SERVER_DLL"] = typeof(ConnectServer).Assembly.Location;
        cluster._environment["CONNECT_BOOTSTRAP_SECRETKEY"] = Convert.ToBase64String(cluster.BootstrapSecret);
        cluster._environment["Logging__LogLevel__Default"] = "Warning";
        cluster._environment["Logging__LogLevel__Connect"] = "Information";
        foreach (var (key, value) in settings ?? new Dictionary<string, string>())
        {
            cluster._environment[key] = value;
        }
        try
        {
            var output = await cluster.RunAsync(TimeSpan.FromMinutes(4), "start", nodes.ToString(System.Globalization.CultureInfo.InvariantCulture));
            cluster.ReadLines(output);
            await cluster.BootstrapAsync();
            return cluster;
        }
        catch
        {
            await cluster.DisposeAsync();
            throw;
        }
    }

    private void ReadLines(string output)
    {
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (line.StartsWith("CONNECT_URL=", StringComparison.Ordinal))
            {
                LoadBalancer = new Uri(line["CONNECT_URL=".Length..].TrimEnd('/') + "/");
            }
            else if (line.StartsWith("NODE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                Nodes[parts[1]] = new Uri(parts[3].TrimEnd('/') + "/");
            }
        }
        Assert.True(LoadBalancer is not null && Nodes.Count > 0, "cluster.sh printed no CONNECT_URL/NODE lines:\n" + output);
    }

    private async Task BootstrapAsync()
    {
        using var client = Client(LoadBalancer, null);
        using var bootstrap = new HttpRequestMessage(HttpMethod.Post, "__api__/v1/experimental/bootstrap");
        bootstrap.Headers.Authorization = new AuthenticationHeaderValue("Connect-Bootstrap", BootstrapJwt.Create(BootstrapSecret, DateTimeOffset.UtcNow));
        using var response = await client.SendAsync(bootstrap);
        response.EnsureSuccessStatusCode();
        AdminKey = (await response.Content.ReadFromJsonAsync<JsonObject>())!["api_key"]!.GetValue<string>();
    }

    public HttpClient Admin(Uri? through = null) => Client(through ?? LoadBalancer, AdminKey);

    public static HttpClient Client(Uri baseAddress, string? key)
    {
        var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, UseCookies = false, PooledConnectionLifetime = TimeSpan.FromSeconds(30) })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromMinutes(3),
        };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Key", key);
        }
        return client;
    }

    /// <summary>SIGKILL, like a machine that dies.</summary>
    public Task KillAsync(string node) => RunAsync(TimeSpan.FromSeconds(30), "kill", node);

    /// <summary>SIGTERM: the node drains, then stops.</summary>
    public Task StopAsync(string node) => RunAsync(TimeSpan.FromMinutes(3), "stop", node);

    public async Task RestartAsync(string node)
    {
        var output = await RunAsync(TimeSpan.FromMinutes(3), "restart", node);
        ReadLines(output);
    }

    public Task<string> LogsAsync(string node, int lines = 200) =>
        RunAsync(TimeSpan.FromSeconds(30), "logs", node, lines.ToString(System.Globalization.CultureInfo.InvariantCulture));

    private async Task<string> RunAsync(TimeSpan timeout, params string[] args)
    {
        var info = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add(Script);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        foreach (var (key, value) in _environment)
        {
            info.Environment[key] = value;
        }
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"cluster.sh {string.Join(' ', args)} did not finish within {timeout}: {await stderr}");
        }
        var output = await stdout;
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"cluster.sh {string.Join(' ', args)} failed ({process.ExitCode}):\n{await stderr}\n{output}");
        }
        return output;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await RunAsync(TimeSpan.FromMinutes(2), "down");
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException)
        {
            // Best effort: the state directory is in /tmp.
        }
    }
}
