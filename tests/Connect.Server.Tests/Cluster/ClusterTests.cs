using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Connect.Server.Tests.Cluster;

/// <summary>Three nodes on PostgreSQL behind haproxy, started with deploy/cluster.sh, shared by the tests of the class.</summary>
public sealed class ThreeNodeCluster : IAsyncLifetime
{
    public LocalCluster Cluster { get; private set; } = null!;

    public async Task InitializeAsync() => Cluster = await LocalCluster.StartAsync(3, new Dictionary<string, string>
    {
        // Short enough for a test, long enough to see that a stopping node drains.
        ["Cluster__DrainSeconds"] = "5",
        ["Scheduler__IdleTimeout"] = "600",
    });

    public async Task DisposeAsync() => await Cluster.DisposeAsync();
}

[Trait("Category", "Cluster")]
public sealed class ClusterTests(ThreeNodeCluster fixture, ITestOutputHelper output) : IClassFixture<ThreeNodeCluster>
{
    private LocalCluster Cluster => fixture.Cluster;

    [Fact]
    public async Task Content_deployed_through_one_node_is_served_by_every_node_and_a_session_stays_with_its_process_across_nodes()
    {
        using var admin = Cluster.Admin(Cluster.Nodes["node1"]);
        var api = await admin.CreateContentAsync("cluster-api", "all");
        await admin.DeployAsync(api["guid"]!.GetValue<string>(), SessionApp.ApiBundle());
        foreach (var (name, url) in Cluster.Nodes.Append(new("lb", Cluster.LoadBalancer)))
        {
            using var viewer = LocalCluster.Client(url, null);
            using var response = await viewer.GetAsync($"content/{api["guid"]}/");
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{name}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
        }

        // A change made through one node reaches every node's cache within a second (not when its cache entry expires).
        using (var node2Viewer = LocalCluster.Client(Cluster.Nodes["node2"], null))
        {
            using (var cached = await node2Viewer.GetAsync($"content/{api["guid"]}/"))
            {
                Assert.Equal(HttpStatusCode.OK, cached.StatusCode);
            }
            await admin.PatchContentAsync(api["guid"]!.GetValue<string>(), new JsonObject { ["access_type"] = "acl" });
            var changed = Stopwatch.StartNew();
            await Eventually.WaitAsync(async () =>
            {
                using var response = await node2Viewer.GetAsync($"content/{api["guid"]}/");
                return response.StatusCode == HttpStatusCode.Unauthorized ? "refused" : null;
            }, TimeSpan.FromSeconds(1), "node2 to refuse the now-private content within 1 s", TimeSpan.FromMilliseconds(20));
            output.WriteLine($"settings change seen by another node after {changed.ElapsedMilliseconds} ms");
            await admin.PatchContentAsync(api["guid"]!.GetValue<string>(), new JsonObject { ["access_type"] = "all" });
        }

        // One process of the session app per node (least-loaded placement spreads them).
        var app = await admin.CreateContentAsync("cluster-session", "all", new JsonObject { ["min_processes"] = 3, ["max_processes"] = 3 });
        var guid = app["guid"]!.GetValue<string>();
        await admin.DeployAsync(guid, SessionApp.Bundle());
        var jobs = await Eventually.WaitAsync(async () =>
        {
            var active = await ActiveJobsAsync(admin, guid);
            return active.Count == 3 ? active : null;
        }, TimeSpan.FromSeconds(60), "three processes of the session app");
        output.WriteLine("processes: " + string.Join(", ", jobs.Select(j => $"{j.Key}@{j.Value}")));
        Assert.Equal(3, jobs.Values.Distinct().Count());

        // A browser session begun on node 2 is pinned to node 2's process (a local process wins on equal load)…
        using var node2 = LocalCluster.Client(Cluster.Nodes["node2"], null);
        using var first = await node2.GetAsync($"content/{guid}/");
        var pin = Assert.Single(first.Headers.GetValues("Set-Cookie"), c => c.StartsWith("connect_session_", StringComparison.Ordinal)).Split(';')[0];
        var pinnedJob = (await first.Content.ReadFromJsonAsync<JsonObject>())!["job"]!.GetValue<string>();
        Assert.Equal("node2", jobs[pinnedJob]);

        // …and every node honours the pin, for plain requests and for its WebSocket, whose state lives in that process.
        foreach (var node in new[] { "node1", "node3" })
        {
            using var viewer = LocalCluster.Client(Cluster.Nodes[node], null);
            using var request = new HttpRequestMessage(HttpMethod.Get, $"content/{guid}/again");
            request.Headers.Add("Cookie", pin);
            using var response = await viewer.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(pinnedJob, (await response.Content.ReadFromJsonAsync<JsonObject>())!["job"]!.GetValue<string>());
        }
        using var socket = new ClientWebSocket();
        socket.Options.SetRequestHeader("Cookie", pin);
        await socket.ConnectAsync(new Uri($"ws://{Cluster.Nodes["node3"].Authority}/content/{guid}/ws"), CancellationToken.None);
        for (var i = 1; i <= 3; i++)
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes($"hello {i}"), WebSocketMessageType.Text, true, CancellationToken.None);
            var reply = JsonNode.Parse(await ReceiveAsync(socket))!;
            Assert.Equal(pinnedJob, reply["job"]!.GetValue<string>());
            Assert.Equal(i, reply["n"]!.GetValue<int>());
            Assert.Equal($"hello {i}", reply["echo"]!.GetValue<string>());
        }
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);

        // An API is never pinned.
        using var lb = LocalCluster.Client(Cluster.LoadBalancer, null);
        using var apiResponse = await lb.GetAsync($"content/{api["guid"]}/");
        Assert.False(apiResponse.Headers.Contains("Set-Cookie"));

        // The internal route is useless without the cluster secret.
        using var forged = new HttpRequestMessage(HttpMethod.Get, $"__internal__/processes/{Guid.NewGuid():N}/");
        forged.Headers.Add("X-Connect-Hop", Convert.ToBase64String(new byte[32]));
        using var refused = await node2.SendAsync(forged);
        Assert.Equal(HttpStatusCode.NotFound, refused.StatusCode);
    }

    [Fact]
    public async Task A_node_killed_under_load_costs_only_the_sessions_of_its_processes()
    {
        using var admin = Cluster.Admin();
        // Three single-process APIs: least-loaded placement puts them on different nodes.
        var items = new List<string>();
        for (var i = 0; i < 3; i++)
        {
            var item = await admin.CreateContentAsync($"failover-{i}", "all", new JsonObject { ["min_processes"] = 1, ["max_processes"] = 1 });
            items.Add(item["guid"]!.GetValue<string>());
            await admin.DeployAsync(items[^1], SessionApp.ApiBundle());
        }
        var where = new Dictionary<string, string>();
        foreach (var guid in items)
        {
            var active = await Eventually.WaitAsync(async () => { var a = await ActiveJobsAsync(admin, guid); return a.Count == 1 ? a : null; },
                TimeSpan.FromSeconds(60), "the item's process");
            where[guid] = active.Values.Single();
        }
        output.WriteLine("placement: " + string.Join(", ", where.Select(w => $"{w.Key[..8]}@{w.Value}")));
        var victim = where.Values.GroupBy(n => n).OrderBy(g => g.Count()).First().Key;
        Assert.Contains(where.Values, n => n != victim);
        var lost = where.Where(w => w.Value == victim).Select(w => w.Key).ToArray();
        var surviving = where.Where(w => w.Value != victim).Select(w => w.Key).ToArray();

        // A session pinned to the victim's process of the session app.
        var session = await admin.CreateContentAsync("failover-session", "all", new JsonObject { ["min_processes"] = 3, ["max_processes"] = 3 });
        var sessionGuid = session["guid"]!.GetValue<string>();
        await admin.DeployAsync(sessionGuid, SessionApp.Bundle());
        await Eventually.WaitAsync(async () => { var a = await ActiveJobsAsync(admin, sessionGuid); return a.Values.Contains(victim) ? a : null; },
            TimeSpan.FromSeconds(60), "a session-app process on the victim");
        using var onVictim = LocalCluster.Client(Cluster.Nodes[victim], null);
        using var begun = await onVictim.GetAsync($"content/{sessionGuid}/");
        var pin = begun.Headers.GetValues("Set-Cookie").Single(c => c.StartsWith("connect_session_", StringComparison.Ordinal)).Split(';')[0];

        var countsBefore = await CatalogCountsAsync(admin);
        // Steady load through the load balancer on the surviving content, from 8 clients.
        var load = SteadyLoad.Start(Cluster.LoadBalancer, 8, worker => $"content/{surviving[worker % surviving.Length]}/");
        await Task.Delay(TimeSpan.FromSeconds(2));
        var killedAt = Stopwatch.StartNew();
        await Cluster.KillAsync(victim);

        // The lost content is served again from a survivor.
        using var lb = LocalCluster.Client(Cluster.LoadBalancer, null);
        foreach (var guid in lost)
        {
            await Eventually.WaitAsync(async () =>
            {
                using var response = await lb.GetAsync($"content/{guid}/");
                return response.StatusCode == HttpStatusCode.OK ? "ok" : null;
            }, TimeSpan.FromSeconds(30), "the lost content served again", TimeSpan.FromMilliseconds(100));
        }
        var failover = killedAt.Elapsed;
        await Task.Delay(TimeSpan.FromSeconds(3));
        var (served, errors) = await load.StopAsync();
        output.WriteLine($"failover {failover.TotalSeconds:0.00} s; {served} requests served to surviving content, {errors.Count} errors");
        Assert.True(errors.Count == 0, $"{errors.Count} errors for content on surviving nodes: {string.Join(" | ", errors.Distinct().Take(5))}");
        // The target is 5 s, measured over several kills by tests/bench/cluster_bench.py (3-4.5 s here). This asserts
        // the outcome; a loaded 2-core CI machine once took 17 s, so it gets slack.
        Assert.True(failover < TimeSpan.FromSeconds(30), $"failover took {failover.TotalSeconds:0.0} s");

        // The pinned session ends clearly, and its pin is cleared; it is never handed another process's state.
        var survivor = Cluster.Nodes.Keys.First(n => n != victim);
        using var viewer = LocalCluster.Client(Cluster.Nodes[survivor], null);
        using var pinned = new HttpRequestMessage(HttpMethod.Get, $"content/{sessionGuid}/");
        pinned.Headers.Add("Cookie", pin);
        using var ended = await viewer.SendAsync(pinned);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ended.StatusCode);
        Assert.Contains("Reload", await ended.Content.ReadAsStringAsync());
        Assert.Contains(ended.Headers.GetValues("Set-Cookie"), c => c.Contains("Max-Age=0", StringComparison.Ordinal));

        // min_processes is restored on the survivors, the victim's jobs are closed, and no record is lost.
        foreach (var guid in lost.Append(sessionGuid))
        {
            var min = guid == sessionGuid ? 3 : 1;
            await Eventually.WaitAsync(async () =>
            {
                var active = await ActiveJobsAsync(admin, guid);
                return active.Count == min && !active.Values.Contains(victim) ? active : null;
            }, TimeSpan.FromSeconds(30), $"min_processes restored on survivors for {guid}");
        }
        Assert.Equal(countsBefore, await CatalogCountsAsync(admin));

        await Cluster.RestartAsync(victim);
        using var back = LocalCluster.Client(Cluster.Nodes[victim], null);
        using var again = await back.GetAsync($"content/{lost[0]}/");
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
    }

    [Fact]
    public async Task A_rolling_restart_under_steady_api_traffic_loses_no_request()
    {
        using var admin = Cluster.Admin();
        var item = await admin.CreateContentAsync("rolling-api", "all", new JsonObject { ["min_processes"] = 2, ["max_processes"] = 3 });
        var guid = item["guid"]!.GetValue<string>();
        await admin.DeployAsync(guid, SessionApp.ApiBundle());
        var load = SteadyLoad.Start(Cluster.LoadBalancer, 4, _ => $"content/{guid}/", pause: TimeSpan.FromMilliseconds(10));
        foreach (var node in Cluster.Nodes.Keys.ToArray())
        {
            await Cluster.StopAsync(node);
            await Cluster.RestartAsync(node);
        }
        var (served, errors) = await load.StopAsync();
        output.WriteLine($"rolling restart: {served} requests served, {errors.Count} errors");
        Assert.True(served > 100, $"only {served} requests were served");
        Assert.True(errors.Count == 0, $"{errors.Count} failed requests: {string.Join(" | ", errors.Distinct().Take(5))}");
    }

    private static async Task<Dictionary<string, string>> ActiveJobsAsync(HttpClient admin, string guid)
    {
        var jobs = (await admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/jobs"))!;
        // A job is recorded when its process is launched and gets its pid once the process is ready: count ready ones.
        return jobs.Where(j => j!["end_time"] is null && j["pid"] is not null).ToDictionary(j => j!["key"]!.GetValue<string>(), j => j!["hostname"]!.GetValue<string>());
    }

    private static async Task<string> CatalogCountsAsync(HttpClient admin)
    {
        var content = (await admin.GetFromJsonAsync<JsonArray>("__api__/v1/content"))!;
        var bundles = 0;
        foreach (var item in content)
        {
            bundles += (await admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{item!["guid"]}/bundles"))!.Count;
        }
        var users = (await admin.GetFromJsonAsync<JsonObject>("__api__/v1/users"))!["results"]!.AsArray().Count;
        return $"{content.Count} content, {bundles} bundles, {users} users";
    }

    private static async Task<string> ReceiveAsync(ClientWebSocket socket)
    {
        var buffer = new byte[4096];
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var result = await socket.ReceiveAsync(buffer, cts.Token);
        return Encoding.UTF8.GetString(buffer, 0, result.Count);
    }
}

/// <summary>Clients reading content through the load balancer until stopped; every answer but a 200 is an error.</summary>
internal sealed class SteadyLoad
{
    private readonly ConcurrentBag<string> _errors = [];
    private readonly CancellationTokenSource _stop = new();
    private Task[] _workers = [];
    private int _served;

    public static SteadyLoad Start(Uri through, int clients, Func<int, string> path, TimeSpan? pause = null)
    {
        var load = new SteadyLoad();
        load._workers = Enumerable.Range(0, clients).Select(worker => Task.Run(() => load.RunAsync(through, path(worker), pause))).ToArray();
        return load;
    }

    private async Task RunAsync(Uri through, string path, TimeSpan? pause)
    {
        using var client = LocalCluster.Client(through, null);
        while (!_stop.IsCancellationRequested)
        {
            try
            {
                using var response = await client.GetAsync(path, _stop.Token);
                if (response.StatusCode == HttpStatusCode.OK) Interlocked.Increment(ref _served);
                else _errors.Add($"{(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                if (pause is { } p) await Task.Delay(p, _stop.Token);
            }
            catch (OperationCanceledException) when (_stop.IsCancellationRequested)
            {
            }
            catch (HttpRequestException e)
            {
                _errors.Add(e.Message);
            }
        }
    }

    public async Task<(int Served, IReadOnlyCollection<string> Errors)> StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_workers);
        _stop.Dispose();
        return (_served, _errors.ToArray());
    }
}
