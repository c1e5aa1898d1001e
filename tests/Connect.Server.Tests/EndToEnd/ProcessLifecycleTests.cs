using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>Processes start on the first request, respect the scaling policy, and stop when idle.</summary>
/// <summary>
/// A node whose content may call its own API on loopback (posit-sdk's Client() inside content): the sandbox's network
/// guard keeps Kestrel's port closed to content unless it is listed in Sandbox:AllowedHostPorts.
/// </summary>
public sealed class ServerReachableFixture : ConnectServerFixture
{
    protected override IEnumerable<string> ExtraArguments => [$"--Sandbox:AllowedHostPorts:0={BaseAddress.Port}"];
}

public sealed class ProcessLifecycleTests(ServerReachableFixture server, ITestOutputHelper output) : IClassFixture<ServerReachableFixture>
{
    private static readonly Dictionary<string, string> App = new()
    {
        ["app.py"] = """
            import json, os, time, urllib.request
            from flask import Flask, jsonify, request

            app = Flask(__name__)

            # Inside its PID namespace the app is pid 2 or so: it names itself by its job key, which the jobs API maps to
            # the host pid.
            @app.get("/pid")
            def pid():
                return jsonify(job=os.environ["CONNECT_CONTENT_JOB_KEY"])

            @app.get("/whoami")
            def whoami():
                # What posit-sdk's Client() does inside content: CONNECT_SERVER + CONNECT_API_KEY.
                req = urllib.request.Request(os.environ["CONNECT_SERVER"] + "__api__/v1/user",
                                             headers={"Authorization": "Key " + os.environ["CONNECT_API_KEY"]})
                with urllib.request.urlopen(req) as r:
                    return jsonify(username=json.load(r)["username"], key=os.environ["CONNECT_API_KEY"])

            @app.get("/sleep")
            def sleep():
                time.sleep(float(request.args.get("s", "1")))
                return jsonify(job=os.environ["CONNECT_CONTENT_JOB_KEY"])
            """,
        ["requirements.txt"] = "",
    };

    private async Task<string> DeployAsync(string name, JsonObject settings)
    {
        var guid = (await server.Admin.CreateContentAsync(name, "all", settings))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundles.Create("python-api", App, entrypoint: "app", pythonVersion: "3.11.2"));
        return guid;
    }

    private async Task<List<JsonObject>> JobsAsync(string guid) =>
        (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/jobs"))!.Select(j => j!.AsObject()).ToList();

    private static Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what) where T : class =>
        Eventually.WaitAsync(probe, timeout, what);

    private static bool ProcessExists(int pid) => Directory.Exists($"/proc/{pid}");

    private async Task<int> PidAsync(string guid, string path = "pid") =>
        await HostPidAsync(guid, (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/{path}"))!);

    /// <summary>The host pid of the process that answered, by its job key.</summary>
    private async Task<int> HostPidAsync(string guid, JsonObject answer)
    {
        var key = answer["job"]!.GetValue<string>();
        var job = (await JobsAsync(guid)).Single(j => j["key"]!.GetValue<string>() == key);
        return int.Parse(job["pid"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
    }

    [Fact]
    public async Task A_cold_start_serves_the_first_request_and_an_idle_process_is_stopped()
    {
        var guid = await DeployAsync("life-idle", new JsonObject { ["idle_timeout"] = 2 });
        Assert.Empty(await JobsAsync(guid));

        var clock = Stopwatch.StartNew();
        var pid = await PidAsync(guid);
        output.WriteLine($"cold start to first response: {clock.ElapsedMilliseconds} ms");
        Assert.True(ProcessExists(pid));
        var job = Assert.Single(await JobsAsync(guid));
        Assert.Equal(0, job["status"]!.GetValue<int>());
        Assert.Equal("run_python_api", job["tag"]!.GetValue<string>());
        Assert.Equal(pid.ToString(System.Globalization.CultureInfo.InvariantCulture), job["pid"]!.GetValue<string>());
        Assert.Equal(pid, await PidAsync(guid));
        var log = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}/jobs/{job["key"]}/log"))!;
        Assert.Contains(log["entries"]!.AsArray(), e => e!["data"]!.GetValue<string>().Contains("serving WSGI application", StringComparison.Ordinal));

        // With no connections for idle_timeout, the supervisor stops the process and the job is closed.
        var finished = await EventuallyAsync(async () => (await JobsAsync(guid)).FirstOrDefault(j => j["status"]!.GetValue<int>() != 0),
            TimeSpan.FromSeconds(30), "the idle process to stop");
        Assert.NotNull(finished["end_time"]);
        await EventuallyAsync(() => Task.FromResult(ProcessExists(pid) ? null : "gone"), TimeSpan.FromSeconds(10), "the OS process to exit");

        var second = await PidAsync(guid);
        Assert.NotEqual(pid, second);
        Assert.Equal(2, (await JobsAsync(guid)).Count);
    }

    [Fact]
    public async Task Max_processes_and_max_conns_per_process_hold_and_excess_is_503()
    {
        var guid = await DeployAsync("life-limits", new JsonObject { ["max_processes"] = 2, ["max_conns_per_process"] = 1, ["load_factor"] = 1.0 });
        var a = server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/sleep?s=6");
        var b = server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/sleep?s=6");
        await EventuallyAsync(async () => (await JobsAsync(guid)).Count(j => j["status"]!.GetValue<int>() == 0 && j["pid"] is not null) == 2 ? "two" : null,
            TimeSpan.FromSeconds(20), "two processes");
        // Both processes hold their one connection: a third concurrent connection has nowhere to go.
        await EventuallyAsync(async () =>
        {
            using var c = await server.Anonymous.GetAsync($"content/{guid}/pid");
            return c.StatusCode == HttpStatusCode.ServiceUnavailable ? "busy" : null;
        }, TimeSpan.FromSeconds(3), "a 503 while both processes are busy");

        var pids = (await Task.WhenAll((await Task.WhenAll(a, b)).Select(r => HostPidAsync(guid, r!)))).ToHashSet();
        Assert.Equal(2, pids.Count);
        Assert.Contains(await PidAsync(guid), pids);
        Assert.Equal(2, (await JobsAsync(guid)).Count);
    }

    [Fact]
    public async Task Min_processes_start_without_a_request_and_survive_idleness()
    {
        var guid = await DeployAsync("life-min", new JsonObject { ["min_processes"] = 1, ["idle_timeout"] = 1 });
        var job = await EventuallyAsync(async () => (await JobsAsync(guid)).FirstOrDefault(j => j["status"]!.GetValue<int>() == 0 && j["pid"] is not null),
            TimeSpan.FromSeconds(20), "the minimum process");
        var pid = int.Parse(job["pid"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        Assert.Equal(pid, await PidAsync(guid));

        // Several idle timeouts pass; the one process the item must keep is still the same one.
        var until = DateTime.UtcNow.AddSeconds(4);
        while (DateTime.UtcNow < until)
        {
            Assert.True(ProcessExists(pid));
            await Task.Delay(250);
        }
        Assert.Equal(pid, await PidAsync(guid));
        Assert.Single(await JobsAsync(guid));
    }

    [Fact]
    public async Task Deleting_a_job_kills_its_process_and_the_next_request_starts_another()
    {
        var guid = await DeployAsync("life-kill", new JsonObject());
        // The process acts as its owner through its own key, which is not listed among the owner's keys.
        var whoami = (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/whoami"))!;
        Assert.Equal("admin", whoami["username"]!.GetValue<string>());
        var processKey = whoami["key"]!.GetValue<string>();
        Assert.DoesNotContain(processKey, await server.Admin.GetStringAsync("__api__/v1/user/api_keys"));
        Assert.DoesNotContain("content-process:", await server.Admin.GetStringAsync("__api__/v1/user/api_keys"));
        var pid = await PidAsync(guid);
        var job = Assert.Single(await JobsAsync(guid));
        using var kill = await server.Admin.DeleteAsync($"__api__/v1/content/{guid}/jobs/{job["key"]}");
        Assert.Equal(HttpStatusCode.OK, kill.StatusCode);
        Assert.Equal("Order to kill job registered", (await kill.Content.ReadFromJsonAsync<JsonObject>())!["result"]!.GetValue<string>());
        await EventuallyAsync(() => Task.FromResult(ProcessExists(pid) ? null : "gone"), TimeSpan.FromSeconds(10), "the killed process to exit");
        using var stale = server.NewClient(processKey);
        await EventuallyAsync(async () =>
        {
            using var r = await stale.GetAsync("__api__/v1/user");
            return r.StatusCode == HttpStatusCode.Unauthorized ? "revoked" : null;
        }, TimeSpan.FromSeconds(10), "the process key to be revoked");
        Assert.NotEqual(pid, await PidAsync(guid));
    }

    [Fact]
    public async Task Deleting_content_stops_its_processes_and_removes_its_files()
    {
        var guid = await DeployAsync("life-delete", new JsonObject());
        var pid = await PidAsync(guid);
        using var delete = await server.Admin.DeleteAsync($"__api__/v1/content/{guid}");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        await EventuallyAsync(() => Task.FromResult(ProcessExists(pid) ? null : "gone"), TimeSpan.FromSeconds(10), "the process of deleted content to exit");
        Assert.False(Directory.Exists(Path.Combine(server.DataDir, "apps", guid)));
        Assert.False(Directory.Exists(Path.Combine(server.DataDir, "bundles", guid)));
        using var gone = await server.Anonymous.GetAsync($"content/{guid}/pid");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
    }

    [Fact]
    public async Task Changing_environment_variables_restarts_the_processes()
    {
        var guid = await DeployAsync("life-env", new JsonObject());
        var pid = await PidAsync(guid);
        using var env = await server.Admin.PatchAsync($"__api__/v1/content/{guid}/environment",
            ConnectClient.Json(JsonNode.Parse("""[{"name":"_CONNECT_RESTART_TMP_1","value":"1"}]""")!));
        env.EnsureSuccessStatusCode();
        await EventuallyAsync(() => Task.FromResult(ProcessExists(pid) ? null : "gone"), TimeSpan.FromSeconds(10), "the old process to stop");
        Assert.NotEqual(pid, await PidAsync(guid));
    }
}
