using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>A node with a short restart backoff (2 s doubling to 8 s) and a crash loop at 3 failures, so tests run in seconds.</summary>
public sealed class CrashLoopFixture : ConnectServerFixture
{
    public const int InitialSeconds = 2;
    public const int Failures = 3;

    protected override IEnumerable<string> ExtraArguments =>
    [
        $"--Scheduler:RestartBackoffInitialSeconds={InitialSeconds}",
        "--Scheduler:RestartBackoffMaxSeconds=8",
        $"--Scheduler:CrashLoopFailures={Failures}",
        "--Scheduler:CrashLoopWindowSeconds=300",
    ];
}

/// <summary>Repeated failures back off exponentially, then mark the content crash-looping until a redeploy.</summary>
public sealed class CrashLoopTests(CrashLoopFixture server, ITestOutputHelper output) : IClassFixture<CrashLoopFixture>
{
    private static readonly Dictionary<string, string> Healthy = new()
    {
        ["app.py"] = """
            import os
            from flask import Flask, jsonify

            app = Flask(__name__)

            @app.get("/pid")
            def pid():
                return jsonify(job=os.environ["CONNECT_CONTENT_JOB_KEY"])

            @app.get("/crash")
            def crash():
                print("CRASH-MARKER dying on request", flush=True)
                os._exit(9)
            """,
        ["requirements.txt"] = "",
    };

    private static readonly Dictionary<string, string> BrokenAtImport = new()
    {
        ["app.py"] = """
            import sys
            print("IMPORT-MARKER giving up", flush=True)
            sys.exit(3)
            """,
        ["requirements.txt"] = "",
    };

    private static byte[] Bundle(Dictionary<string, string> files) => Bundles.Create("python-api", files, entrypoint: "app", pythonVersion: "3.11.2");

    private async Task<string> DeployAsync(string name, Dictionary<string, string> files)
    {
        var guid = (await server.Admin.CreateContentAsync(name, "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundle(files));
        return guid;
    }

    private async Task<List<JsonObject>> JobsAsync(string guid) =>
        (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/jobs"))!.Select(j => j!.AsObject()).ToList();

    private async Task<JsonNode?> CrashLoopAsync(string guid) =>
        (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}"))!["crash_loop"];

    private async Task<(HttpStatusCode Status, string Page)> GetAsync(HttpClient client, string url)
    {
        using var response = await client.GetAsync(url);
        var page = await response.Content.ReadAsStringAsync();
        output.WriteLine($"{DateTime.UtcNow:HH:mm:ss.fff} GET {url}: {(int)response.StatusCode}");
        return (response.StatusCode, page);
    }

    private static Task<T> EventuallyAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what) where T : class =>
        Eventually.WaitAsync(probe, timeout, what, TimeSpan.FromMilliseconds(200));

    private static DateTimeOffset StartTime(JsonObject job) =>
        DateTimeOffset.Parse(job["start_time"]!.GetValue<string>(), CultureInfo.InvariantCulture);

    [Fact]
    public async Task Failed_starts_back_off_exponentially_then_crash_loop_as_503_until_a_fixed_bundle_is_deployed()
    {
        var guid = await DeployAsync("crash-import", BrokenAtImport);
        Assert.Null(await CrashLoopAsync(guid));

        var first = await GetAsync(server.Anonymous, $"content/{guid}/");
        Assert.Equal(HttpStatusCode.BadGateway, first.Status);
        Assert.Contains("failed to start", first.Page);
        // Within the hold the failure is repeated to the viewer, not retried.
        var held = await GetAsync(server.Anonymous, $"content/{guid}/");
        Assert.Equal(HttpStatusCode.BadGateway, held.Status);
        Assert.Single(await JobsAsync(guid));

        // Keep asking: each attempt past the hold starts one more process, until the crash loop stops them.
        await EventuallyAsync(async () =>
        {
            var (status, _) = await GetAsync(server.Anonymous, $"content/{guid}/");
            return status == HttpStatusCode.ServiceUnavailable ? "crash loop" : null;
        }, TimeSpan.FromSeconds(60), "the crash loop");
        var jobs = (await JobsAsync(guid)).OrderBy(StartTime).ToList();
        Assert.Equal(CrashLoopFixture.Failures, jobs.Count);
        output.WriteLine("jobs: " + string.Join("; ", jobs.Select(j => j.ToJsonString())));
        // Holds of 2 s then 4 s between the starts (the API's times are whole seconds: allow one second).
        var gaps = jobs.Zip(jobs.Skip(1), (a, b) => (StartTime(b) - StartTime(a)).TotalSeconds).ToList();
        output.WriteLine("gaps between starts: " + string.Join(", ", gaps));
        Assert.True(gaps[0] >= CrashLoopFixture.InitialSeconds - 1, $"gap {gaps[0]}");
        Assert.True(gaps[1] >= 2 * CrashLoopFixture.InitialSeconds - 1, $"gap {gaps[1]}");
        // Job start times have whole seconds: the second hold (twice the first) is at least 2 × InitialSeconds after
        // truncation, where a hold that did not double would leave about InitialSeconds plus a start.
        Assert.True(gaps[1] >= 2 * CrashLoopFixture.InitialSeconds && gaps[1] >= gaps[0], $"gaps {gaps[0]}, {gaps[1]}");

        // Viewers get the 503 without the log; the owner also sees its last lines.
        var viewer = await GetAsync(server.Anonymous, $"content/{guid}/");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, viewer.Status);
        Assert.Contains("This application keeps crashing", viewer.Page);
        Assert.DoesNotContain("IMPORT-MARKER", viewer.Page);
        var owner = await GetAsync(server.Admin, $"content/{guid}/");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, owner.Status);
        Assert.Contains("IMPORT-MARKER", owner.Page);
        Assert.Equal(CrashLoopFixture.Failures, (await JobsAsync(guid)).Count);

        var crashLoop = (await CrashLoopAsync(guid))!.AsObject();
        Assert.Equal(CrashLoopFixture.Failures, crashLoop["failures"]!.GetValue<int>());
        output.WriteLine("crash_loop: " + crashLoop.ToJsonString());
        Assert.Contains("exited with code", crashLoop["last_error"]!.GetValue<string>());
        Assert.NotNull(crashLoop["since"]);
        Assert.NotNull(crashLoop["next_start_time"]);

        // A fixed bundle is a new application: the mark and the hold go at once.
        await server.Admin.DeployAsync(guid, Bundle(Healthy));
        Assert.Null(await CrashLoopAsync(guid));
        var fixedPage = await GetAsync(server.Anonymous, $"content/{guid}/pid");
        Assert.Equal(HttpStatusCode.OK, fixedPage.Status);
    }

    [Fact]
    public async Task Min_processes_restarts_obey_the_backoff_and_reach_the_crash_loop_without_requests()
    {
        var guid = (await server.Admin.CreateContentAsync("crash-min", "all", new JsonObject { ["min_processes"] = 1 }))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundle(BrokenAtImport));
        // Nobody asks for the content: the grain's own retries, held by the backoff, count up to the crash loop.
        var crashLoop = await EventuallyAsync(() => CrashLoopAsync(guid), TimeSpan.FromSeconds(60), "the crash loop");
        Assert.Equal(CrashLoopFixture.Failures, crashLoop["failures"]!.GetValue<int>());
        var jobs = (await JobsAsync(guid)).OrderBy(StartTime).ToList();
        Assert.Equal(CrashLoopFixture.Failures, jobs.Count);
        var gaps = jobs.Zip(jobs.Skip(1), (a, b) => (StartTime(b) - StartTime(a)).TotalSeconds).ToList();
        output.WriteLine("gaps between starts: " + string.Join(", ", gaps));
        Assert.True(gaps[0] >= CrashLoopFixture.InitialSeconds - 1, $"gap {gaps[0]}");
        // Job start times have whole seconds: the second hold (twice the first) is at least 2 × InitialSeconds after
        // truncation, where a hold that did not double would leave about InitialSeconds plus a start.
        Assert.True(gaps[1] >= 2 * CrashLoopFixture.InitialSeconds && gaps[1] >= gaps[0], $"gaps {gaps[0]}, {gaps[1]}");
        // The hold after the crash loop (8 s) keeps the retries off for a while.
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(CrashLoopFixture.Failures, (await JobsAsync(guid)).Count);
    }

    [Fact]
    public async Task An_isolated_crash_is_replaced_at_once_but_repeated_crashes_are_held_and_become_a_crash_loop()
    {
        var guid = await DeployAsync("crash-request", Healthy);
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(server.Anonymous, $"content/{guid}/pid")).Status);
        Assert.Equal(HttpStatusCode.BadGateway, (await GetAsync(server.Anonymous, $"content/{guid}/crash")).Status);
        // One crash after serving: the next request is served by a new process, no pause.
        Assert.Equal(HttpStatusCode.OK, (await GetAsync(server.Anonymous, $"content/{guid}/pid")).Status);
        Assert.Equal(2, (await JobsAsync(guid)).Count);

        // A second crash in a row: the next start waits for the backoff.
        Assert.Equal(HttpStatusCode.BadGateway, (await GetAsync(server.Anonymous, $"content/{guid}/crash")).Status);
        await EventuallyAsync(async () => (await JobsAsync(guid)).All(j => j["exit_code"] is not null) ? "exited" : null,
            TimeSpan.FromSeconds(10), "the crashed process to be reported");
        // The job row is closed just before the grain hears of the exit.
        await Task.Delay(500);
        var held = await GetAsync(server.Anonymous, $"content/{guid}/pid");
        Assert.Equal(HttpStatusCode.BadGateway, held.Status);
        Assert.Contains("code 9", held.Page);
        Assert.Equal(2, (await JobsAsync(guid)).Count);
        Assert.Null(await CrashLoopAsync(guid));

        // Past the hold it serves again; a third crash within the window is a crash loop.
        await EventuallyAsync(async () => (await GetAsync(server.Anonymous, $"content/{guid}/pid")).Status == HttpStatusCode.OK ? "served" : null,
            TimeSpan.FromSeconds(30), "a new process after the hold");
        Assert.Equal(HttpStatusCode.BadGateway, (await GetAsync(server.Anonymous, $"content/{guid}/crash")).Status);
        var crashLoop = await EventuallyAsync(() => CrashLoopAsync(guid), TimeSpan.FromSeconds(10), "the crash loop");
        Assert.Equal(CrashLoopFixture.Failures, crashLoop["failures"]!.GetValue<int>());
        var owner = await GetAsync(server.Admin, $"content/{guid}/pid");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, owner.Status);
        Assert.Contains("This application keeps crashing", owner.Page);
        Assert.Contains("CRASH-MARKER", owner.Page);
        Assert.Equal(3, (await JobsAsync(guid)).Count);
    }
}
