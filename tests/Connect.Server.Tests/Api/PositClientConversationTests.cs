using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Api;

/// <summary>
/// The request sequences Posit's clients send, replayed call for call from the recorded conversations in the
/// spec (§1.3 rsconnect deploy, §1.5 redeploy, posit-sdk polling), reading only the fields they read.
/// </summary>
public sealed class PositClientConversationTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    private HttpClient Rsconnect()
    {
        var client = server.NewClient(server.AdminKey);
        client.DefaultRequestHeaders.UserAgent.ParseAdd("RSConnectPython/1.29.0");
        return client;
    }

    private static async Task<JsonNode> JsonOf(HttpResponseMessage response)
    {
        // rsconnect only parses bodies whose Content-Type starts with application/json, and fails on a 2xx it cannot parse.
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType!.ToString());
        return (await response.Content.ReadFromJsonAsync<JsonNode>())!;
    }

    private static StringContent Body(string json) => new(json, Encoding.UTF8, "application/json");

    [Fact]
    public async Task Rsconnect_deploy_fastapi_new_content_then_redeploy()
    {
        using var http = Rsconnect();
        for (var i = 0; i < 2; i++)
        {
            Assert.Matches(@"^\d{4}\.\d{2}\.\d+$", (await JsonOf(await http.GetAsync("__api__/server_settings")))["version"]!.GetValue<string>());
        }
        Assert.Equal("admin", (await JsonOf(await http.GetAsync("__api__/v1/user")))["username"]!.GetValue<string>());

        // Name lookup: a JSON list, retried with suffixes until empty.
        const string name = "fastapi-app";
        Assert.Empty((await JsonOf(await http.GetAsync($"__api__/v1/content?name={name}"))).AsArray());
        await JsonOf(await http.GetAsync("__api__/server_settings"));
        var content = (await JsonOf(await http.PostAsync("__api__/v1/content", Body($$"""{"name": "{{name}}"}""")))).AsObject();
        var guid = content["guid"]!.GetValue<string>();
        foreach (var field in new[] { "guid", "id", "title", "content_url", "dashboard_url" })
        {
            Assert.NotNull(content[field]);
        }
        // -E: environment before the title patch; both answer 200 + JSON.
        Assert.Equal("FOO", (await JsonOf(await http.PatchAsync($"__api__/v1/content/{guid}/environment", Body("""[{"name":"FOO","value":"bar"}]""")))).AsArray().Single()!.GetValue<string>());
        Assert.Equal(name, (await JsonOf(await http.PatchAsync($"__api__/v1/content/{guid}", Body($$"""{"title": "{{name}}"}""")))).AsObject()["title"]!.GetValue<string>());

        var bundleId = await UploadChunkedAsync(http, guid, Bundles.FromSample("fastapi-app"));
        var taskId = (await JsonOf(await http.PostAsync($"__api__/v1/content/{guid}/deploy", Body($$"""{"bundle_id": "{{bundleId}}"}"""))))["task_id"]!.GetValue<string>();
        await PollLikeRsconnectAsync(http, taskId);

        // Verify: rsconnect builds "//content/{guid}/" (dirname of /__api__ is "/") and sends the key along;
        // anything below 500 passes, so this must reach the app, not a 404.
        using var verify = await http.GetAsync(new Uri($"http://{server.BaseAddress.Authority}//content/{guid}/"));
        Assert.True((int)verify.StatusCode < 500, verify.StatusCode.ToString());
        Assert.Equal(HttpStatusCode.OK, verify.StatusCode);

        // Redeploy from the stored record: GET by guid, then the same upload/deploy/poll.
        var again = (await JsonOf(await http.GetAsync($"__api__/v1/content/{guid}"))).AsObject();
        Assert.Equal("python-fastapi", again["app_mode"]!.GetValue<string>());
        var second = await UploadChunkedAsync(http, guid, Bundles.FromSample("fastapi-app"));
        Assert.NotEqual(bundleId, second);
        var task2 = (await JsonOf(await http.PostAsync($"__api__/v1/content/{guid}/deploy", Body($$"""{"bundle_id": "{{second}}"}"""))))["task_id"]!.GetValue<string>();
        await PollLikeRsconnectAsync(http, task2);
        Assert.Equal(second, (await JsonOf(await http.GetAsync($"__api__/v1/content/{guid}"))).AsObject()["bundle_id"]!.GetValue<string>());
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync($"content/{guid}/")).StatusCode);
    }

    [Fact]
    public async Task Posit_sdk_create_upload_deploy_and_wait_without_first()
    {
        using var http = server.NewClient(server.AdminKey);
        var content = (await JsonOf(await http.PostAsync("__api__/v1/content", Body("""{"name":"sdk-static","title":"From the SDK","access_type":"logged_in"}""")))).AsObject();
        var guid = content["guid"]!.GetValue<string>();
        var fetched = (await JsonOf(await http.GetAsync($"__api__/v1/content/{guid}?include=owner,tags,vanity_url"))).AsObject();
        Assert.Equal("logged_in", fetched["access_type"]!.GetValue<string>());

        // posit-sdk posts raw bytes with no Content-Type.
        using var bytes = new ByteArrayContent(Bundles.FromSample("static-site"));
        var bundle = (await JsonOf(await http.PostAsync($"__api__/v1/content/{guid}/bundles", bytes))).AsObject();
        // ContentItem.deploy() sends bundle_id null: the newest bundle is deployed.
        var taskId = (await JsonOf(await http.PostAsync($"__api__/v1/content/{guid}/deploy", Body("""{"bundle_id": null}"""))))["task_id"]!.GetValue<string>();
        JsonObject task;
        var polls = 0;
        do
        {
            task = (await JsonOf(await http.GetAsync($"__api__/v1/tasks/{taskId}?wait=1"))).AsObject();
            polls++;
        }
        while (!task["finished"]!.GetValue<bool>() && polls < 200);
        Assert.Equal(0, task["code"]!.GetValue<int>());
        Assert.Contains("Deployment completed successfully.", task["output"]!.AsArray().Select(l => l!.GetValue<string>()));
        Assert.Equal(bundle["id"]!.GetValue<string>(), (await JsonOf(await http.GetAsync($"__api__/v1/content/{guid}"))).AsObject()["bundle_id"]!.GetValue<string>());
    }

    private static async Task<string> UploadChunkedAsync(HttpClient http, string guid, byte[] bundle)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, $"__api__/v1/content/{guid}/bundles")
        {
            Content = new StreamContent(new UnknownLengthStream(bundle)),
        };
        request.Headers.TransferEncodingChunked = true;
        using var response = await http.SendAsync(request);
        return (await JsonOf(response))["id"]!.GetValue<string>();
    }

    /// <summary>rsconnect's loop: first=last, wait=1, print output, stop when finished; non-zero code fails the deploy.</summary>
    private static async Task PollLikeRsconnectAsync(HttpClient http, string taskId)
    {
        var first = 0;
        var requests = 0;
        var lines = new List<string>();
        while (true)
        {
            var task = (await JsonOf(await http.GetAsync(first == 0 ? $"__api__/v1/tasks/{taskId}?wait=1" : $"__api__/v1/tasks/{taskId}?first={first}&wait=1"))).AsObject();
            requests++;
            lines.AddRange(task["output"]!.AsArray().Select(l => l!.GetValue<string>()));
            first = task["last"]!.GetValue<int>();
            if (task["finished"]!.GetValue<bool>())
            {
                Assert.True(task["code"]!.GetValue<int>() == 0, string.Join('\n', lines));
                break;
            }
            Assert.True(requests < 600, "the task never finished");
        }
        // first/last paging hands out every line exactly once.
        Assert.Single(lines, l => l.StartsWith("Deploying bundle", StringComparison.Ordinal));
        Assert.Single(lines, l => Regex.IsMatch(l, "^Deployment completed successfully"));
    }

    private sealed class UnknownLengthStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
