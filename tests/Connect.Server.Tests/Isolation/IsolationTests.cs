using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Isolation;

/// <summary>A node that refuses to start unless every protection holds, with small limits to run into.</summary>
public sealed class IsolationFixture : ConnectServerFixture
{
    public const int MemoryLimitMB = 200;
    public const int ProcessLimit = 48;

    protected override IEnumerable<string> ExtraArguments =>
    [
        "--Sandbox:Mode=Required",
        $"--Applications:DefaultMemoryLimitMB={MemoryLimitMB}",
        $"--Applications:ProcessLimit={ProcessLimit}",
    ];
}

/// <summary>
/// A hostile publisher's app tries each way out that a review found open: the server through /proc, other content's
/// secrets and socket, the silo and Kestrel ports, the host's files, signals, forks and memory beyond its limits, and
/// writes at render time. Every attempt must fail, and the app must keep serving where the policy says it lives.
/// </summary>
public sealed class IsolationTests(IsolationFixture server) : IClassFixture<IsolationFixture>
{
    private static string E(string s) => Uri.EscapeDataString(s);

    private async Task<string> DeployHostileAsync(string name, JsonObject? settings = null)
    {
        var guid = (await server.Admin.CreateContentAsync(name, "all"))["guid"]!.GetValue<string>();
        if (settings is not null)
        {
            await server.Admin.PatchContentAsync(guid, settings);
        }
        await server.Admin.DeployAsync(guid, Bundles.Create("python-api", HostileApp.Files, entrypoint: "app", pythonVersion: "3.11.2"));
        return guid;
    }

    private async Task<JsonObject> AskAsync(string guid, string path)
    {
        using var response = await server.Anonymous.GetAsync($"content/{guid}/{path}");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {body}");
        return JsonNode.Parse(body)!.AsObject();
    }

    private static void Denied(JsonObject result, string what) =>
        Assert.False(result["ok"]!.GetValue<bool>(), $"{what} succeeded: {result.ToJsonString()}");

    private async Task<List<JsonObject>> JobsAsync(string guid) =>
        (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/jobs"))!.Select(j => j!.AsObject()).ToList();

    [Fact]
    public async Task Content_runs_unprivileged_without_capabilities_and_sees_only_its_own_processes()
    {
        var guid = await DeployHostileAsync("iso-whoami");
        var me = await AskAsync(guid, "whoami");
        var expected = Connect.Runtime.Sandbox.RunAsUser.Find("connect-content");
        Assert.NotNull(expected);
        Assert.Equal(expected.Uid, me["uid"]!.GetValue<int>());
        Assert.Equal(expected.Uid, me["euid"]!.GetValue<int>());
        Assert.NotEqual(0, me["gid"]!.GetValue<int>());
        Assert.Equal("0000000000000000", me["cap_eff"]!.GetValue<string>());
        Assert.Equal("1", me["no_new_privs"]!.GetValue<string>());
        // Its own PID namespace: bubblewrap's init, the app and nothing of the host (not the server, not other content).
        var cmdlines = me["cmdlines"]!.AsArray().Select(c => c!.GetValue<string>()).ToList();
        Assert.True(cmdlines.Count <= 4, "sees processes beyond its own: " + string.Join(" | ", cmdlines));
        Assert.DoesNotContain(cmdlines, c => c.Contains("dotnet", StringComparison.Ordinal) || c.Contains("testhost", StringComparison.Ordinal));
        // The server's environment is not inherited: no secrets, no DOTNET_, no bootstrap key.
        var env = me["env"]!.AsArray().Select(e => e!.GetValue<string>()).ToList();
        Assert.DoesNotContain(env, e => e.StartsWith("DOTNET", StringComparison.Ordinal) || e.Contains("BOOTSTRAP", StringComparison.Ordinal) || e.StartsWith("Connect__", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Content_cannot_reach_the_server_through_proc_nor_signal_it()
    {
        var guid = await DeployHostileAsync("iso-proc");
        var serverPid = Environment.ProcessId;
        foreach (var path in new[]
        {
            $"/proc/{serverPid}/environ",
            $"/proc/{serverPid}/root{server.DataDir}/db/secret.key",
            $"/proc/1/root{server.DataDir}/db/secret.key",
            $"/proc/{serverPid}/mem",
            $"{server.DataDir}/db/secret.key",
            $"{server.DataDir}/db/connect.db",
            "/etc/shadow",
        })
        {
            Denied(await AskAsync(guid, $"read?path={E(path)}"), "reading " + path);
        }
        // The data directory's path may exist inside (mount points of its own bundle and work directory), but none of
        // the host's catalog, keys, archives, logs or sockets, and no other content.
        var listing = await AskAsync(guid, $"list?path={E(server.DataDir)}");
        if (listing["ok"]!.GetValue<bool>())
        {
            var names = listing["value"]!.AsArray().Select(n => n!.GetValue<string>()).ToList();
            Assert.DoesNotContain("db", names);
            Assert.DoesNotContain("logs", names);
            Assert.DoesNotContain("bundles", names);
            Assert.DoesNotContain("run", names);
        }
        var apps = await AskAsync(guid, $"list?path={E(Path.Combine(server.DataDir, "apps"))}");
        Assert.Equal(guid, Assert.Single(apps["value"]!.AsArray())!.GetValue<string>());
        Denied(await AskAsync(guid, $"kill?pid={serverPid}&sig=0"), "signalling the server");
        Denied(await AskAsync(guid, $"kill?pid={serverPid}&sig=15"), "terminating the server");
        // The server's binaries and configuration are not there either.
        Denied(await AskAsync(guid, $"list?path={E(AppContext.BaseDirectory)}"), "listing the server's binaries");
    }

    [Fact]
    public async Task Content_cannot_write_the_host_only_its_own_directories()
    {
        var guid = await DeployHostileAsync("iso-write");
        var me = await AskAsync(guid, "whoami");
        var cwd = me["cwd"]!.GetValue<string>();
        var marker = $"connect-isolation-{Guid.NewGuid():N}";
        foreach (var path in new[]
        {
            Path.Combine(server.DataDir, marker),
            Path.Combine(server.DataDir, "apps", marker),
            Path.Combine(cwd, marker),
            "/usr/local/bin/" + marker,
            "/etc/" + marker,
        })
        {
            await AskAsync(guid, $"write?path={E(path)}");
            Assert.False(File.Exists(path), path + " was written on the host");
        }
        var original = await File.ReadAllTextAsync(Path.Combine(cwd, "app.py"));
        Denied(await AskAsync(guid, $"write?path={E(Path.Combine(cwd, "app.py"))}"), "overwriting its own bundle");
        Assert.Equal(original, await File.ReadAllTextAsync(Path.Combine(cwd, "app.py")));
        Denied(await AskAsync(guid, $"write?path={E("/etc/" + marker)}"), "writing /etc");
        // Its private /tmp is its own, not the host's.
        Assert.True((await AskAsync(guid, $"write?path={E("/tmp/" + marker)}"))["ok"]!.GetValue<bool>());
        Assert.False(File.Exists("/tmp/" + marker), "the app's /tmp is the host's /tmp");
        // Its work directory (HOME) is writable and kept on the host, under the data directory.
        var home = me["home"]!.GetValue<string>();
        Assert.True((await AskAsync(guid, $"write?path={E(Path.Combine(home, "state.txt"))}"))["ok"]!.GetValue<bool>());
        Assert.True(File.Exists(Path.Combine(server.DataDir, "work", guid, "state.txt")));
    }

    [Fact]
    public async Task Content_cannot_read_another_process_secrets_nor_reach_its_socket_the_silo_or_kestrel()
    {
        var attacker = await DeployHostileAsync("iso-attacker");
        var victim = await DeployHostileAsync("iso-victim");
        var secret = "victim-secret-" + Guid.NewGuid().ToString("N");
        using (var patch = await server.Admin.PatchAsync($"__api__/v1/content/{victim}/environment",
            ConnectClient.Json(new JsonArray(new JsonObject { ["name"] = "VICTIM_SECRET", ["value"] = secret }))))
        {
            Assert.True(patch.IsSuccessStatusCode, await patch.Content.ReadAsStringAsync());
        }
        await AskAsync(victim, "pid");
        await AskAsync(attacker, "pid");
        var victimJob = (await JobsAsync(victim)).Single(j => j["end_time"] is null);
        var socket = Path.Combine(server.DataDir, "run", victimJob["key"]!.GetValue<string>(), "app.sock");
        Assert.True(File.Exists(socket), "the victim's socket is not where the test expects it: " + socket);

        var scan = await AskAsync(attacker, $"scan_environ?needle={E(secret)}");
        Assert.Empty(scan["found"]!.AsArray());
        Denied(await AskAsync(attacker, $"connect_unix?path={E(socket)}"), "connecting to the victim's socket");
        Denied(await AskAsync(attacker, $"read?path={E(Path.Combine(server.DataDir, "logs", victim, victimJob["key"]!.GetValue<string>() + ".log"))}"), "reading the victim's log");
        Denied(await AskAsync(attacker, $"connect?host=127.0.0.1&port={server.SiloPort}"), "connecting to the silo");
        Denied(await AskAsync(attacker, $"connect?host=127.0.0.1&port={server.BaseAddress.Port}"), "connecting to Kestrel");
        Denied(await AskAsync(attacker, $"connect?host=localhost&port={server.BaseAddress.Port}"), "connecting to Kestrel by name");
        // The front end still reaches both.
        Assert.Equal(HttpStatusCode.OK, (await server.Anonymous.GetAsync($"content/{victim}/pid")).StatusCode);
    }

    [Fact]
    public async Task Forks_beyond_the_process_cap_fail_and_the_app_keeps_serving()
    {
        var guid = await DeployHostileAsync("iso-fork");
        var result = await AskAsync(guid, "fork?n=500");
        var forked = result["forked"]!.GetValue<int>();
        Assert.True(forked < IsolationFixture.ProcessLimit, $"forked {forked} processes with a cap of {IsolationFixture.ProcessLimit}");
        Assert.NotNull(result["failure"]?.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await server.Anonymous.GetAsync($"content/{guid}/pid")).StatusCode);
    }

    [Fact]
    public async Task Memory_beyond_the_limit_kills_the_process_its_log_says_why_and_the_next_request_starts_a_new_one()
    {
        var guid = await DeployHostileAsync("iso-memory", new JsonObject { ["max_processes"] = 1 });
        var first = (await AskAsync(guid, "pid"))["pid"]!.GetValue<int>();
        var firstJob = Assert.Single(await JobsAsync(guid));
        using (var hog = await server.Anonymous.GetAsync($"content/{guid}/alloc?mb={IsolationFixture.MemoryLimitMB * 3}"))
        {
            Assert.NotEqual(HttpStatusCode.OK, hog.StatusCode);
            var page = await hog.Content.ReadAsStringAsync();
            Assert.Contains("stopped", page, StringComparison.OrdinalIgnoreCase);
        }
        var log = await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}/jobs/{firstJob["key"]}/log");
        var lines = log!["entries"]!.AsArray().Select(e => e!["data"]!.GetValue<string>()).ToList();
        Assert.Contains(lines, l => l.Contains("memory limit", StringComparison.Ordinal));
        // Under a failure hold the next request would get a 502 "failed to start" page at once; it must be served by a
        // new process instead (AskAsync asserts 200).
        var next = await AskAsync(guid, "pid");
        var jobs = await JobsAsync(guid);
        Assert.True(jobs.Count == 2, "jobs: " + string.Join("; ", jobs.Select(j => $"{j["key"]} exit {j["exit_code"]} start {j["start_time"]} end {j["end_time"]}")));
        _ = first;
        _ = next;
    }

    [Fact]
    public async Task A_notebook_cannot_write_the_host_or_reach_the_server_while_it_renders()
    {
        var guid = (await server.Admin.CreateContentAsync("iso-render", "all"))["guid"]!.GetValue<string>();
        var target = $"/var/tmp/render-planted-{Guid.NewGuid():N}";
        await server.Admin.DeployAsync(guid, Bundles.Create("jupyter-static",
            new Dictionary<string, string> { ["hostile.ipynb"] = HostileApp.Notebook(target, server.BaseAddress.Port), ["requirements.txt"] = "" },
            entrypoint: "hostile.ipynb", pythonVersion: "3.11.2"));
        Assert.False(File.Exists(target), "the notebook wrote the host at render time");
        var html = await server.Anonymous.GetStringAsync($"content/{guid}/");
        // The cells' source is in the page too: look at what they printed.
        Assert.Contains("WRITE-OUTCOME=denied", html, StringComparison.Ordinal);
        Assert.Contains("CONNECT-OUTCOME=denied", html, StringComparison.Ordinal);
        Assert.DoesNotContain("UID-OUTCOME=0<", html, StringComparison.Ordinal);
        Assert.Contains("UID-OUTCOME=", html, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_process_outlives_the_thread_pool_threads_that_were_busy_when_it_started()
    {
        // Threads the pool adds for a burst retire after about 20 s idle; a child whose parent-death signal was tied to
        // one of them used to be SIGKILLed then, whatever its policy.
        var guid = await DeployHostileAsync("iso-lifetime", new JsonObject { ["min_processes"] = 1, ["max_processes"] = 1, ["max_conns_per_process"] = 100, ["idle_timeout"] = 3600 });
        var burst = Enumerable.Range(0, 64).Select(_ => Task.Run(async () => (await AskAsync(guid, "pid"))["pid"]!.GetValue<int>())).ToArray();
        await Task.WhenAll(burst);
        var job = Assert.Single(await JobsAsync(guid));
        var hostPid = int.Parse(job["pid"]!.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture);
        var threadsAfterBurst = ThreadPool.ThreadCount;
        await Task.Delay(TimeSpan.FromSeconds(32));
        Assert.True(Directory.Exists($"/proc/{hostPid}"), $"process {hostPid} died while idle (pool had {threadsAfterBurst} threads, now {ThreadPool.ThreadCount})");
        await AskAsync(guid, "pid");
        Assert.Equal(job["key"]!.GetValue<string>(), Assert.Single(await JobsAsync(guid))["key"]!.GetValue<string>());
    }
}
