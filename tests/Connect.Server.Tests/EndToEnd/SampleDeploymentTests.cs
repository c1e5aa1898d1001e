using System.Net;
using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>Every sample deployed over HTTP and read back through the front end, as a viewer would.</summary>
public sealed class SampleDeploymentTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    private async Task<string> DeploySampleAsync(string sample, string accessType = "all")
    {
        var guid = (await server.Admin.CreateContentAsync($"e2e-{sample}-{Guid.NewGuid().ToString("N")[..6]}", accessType))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundles.FromSample(sample));
        return guid;
    }

    [Fact]
    public async Task Static_site_is_served_with_its_primary_document_nested_pages_and_types()
    {
        var guid = await DeploySampleAsync("static-site");
        using var bare = await server.Anonymous.GetAsync($"content/{guid}");
        Assert.Equal(HttpStatusCode.MovedPermanently, bare.StatusCode);
        Assert.Equal($"/content/{guid}/", bare.Headers.Location!.OriginalString);

        var index = await server.Anonymous.GetStringAsync($"content/{guid}/");
        Assert.Contains("Hello from a static site", index);
        Assert.Contains("Nested pages", await server.Anonymous.GetStringAsync($"content/{guid}/about/"));
        using var css = await server.Anonymous.GetAsync($"content/{guid}/style.css");
        Assert.Equal("text/css", css.Content.Headers.ContentType!.MediaType);
        using var missing = await server.Anonymous.GetAsync($"content/{guid}/nope.html");
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        using var escape = await server.Anonymous.GetAsync($"content/{guid}/..%2F..%2Fdb%2Fconnect.db");
        Assert.Equal(HttpStatusCode.NotFound, escape.StatusCode);
    }

    [Fact]
    public async Task Flask_api_runs_under_its_content_path_with_connect_environment()
    {
        var guid = await DeploySampleAsync("flask-api");
        using var env = await server.Admin.PatchAsync($"__api__/v1/content/{guid}/environment",
            ConnectClient.Json(JsonNode.Parse("""[{"name":"GREETING","value":"hi there"}]""")!));
        env.EnsureSuccessStatusCode();

        var index = (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/"))!;
        Assert.Equal("Hello from Flask", index["message"]!.GetValue<string>());
        Assert.Equal($"/content/{guid}/", index["self_url"]!.GetValue<string>());
        Assert.Equal($"/content/{guid}", index["script_root"]!.GetValue<string>());
        Assert.Equal(5, (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/add?a=2&b=3"))!["result"]!.GetValue<int>());
        // An encoded '?' is part of the path, not the start of a query: the app must see it as the viewer sent it.
        using var encoded = await server.Anonymous.GetAsync($"content/{guid}/add%3Fa=2%26b=40");
        Assert.Equal(HttpStatusCode.NotFound, encoded.StatusCode);

        var vars = (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/env"))!;
        Assert.Equal(guid, vars["content_guid"]!.GetValue<string>());
        Assert.Equal("CONNECT", vars["product"]!.GetValue<string>());
        Assert.Equal(server.BaseAddress.ToString(), vars["connect_server"]!.GetValue<string>());
        Assert.Equal("hi there", vars["greeting"]!.GetValue<string>());

        var headers = (await server.Admin.GetFromJsonAsync<JsonObject>($"content/{guid}/headers"))!;
        Assert.Equal(new Uri(server.BaseAddress, $"content/{guid}").ToString(), headers["Rstudio-Connect-App-Base-Url"]!.GetValue<string>());
        Assert.Equal("http", headers["X-Forwarded-Proto"]!.GetValue<string>());
        Assert.Equal(server.BaseAddress.Authority, headers["X-Forwarded-Host"]!.GetValue<string>());
        Assert.Equal("127.0.0.1", headers["X-Forwarded-For"]!.GetValue<string>());
        // The publisher's Connect key is for Connect, never for the app.
        Assert.False(headers.ContainsKey("Authorization"));
    }

    [Fact]
    public async Task FastApi_app_sees_its_root_path_and_echoes_over_a_websocket()
    {
        var guid = await DeploySampleAsync("fastapi-app");
        var index = (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/"))!;
        Assert.Equal("Hello from FastAPI", index["message"]!.GetValue<string>());
        Assert.Equal($"/content/{guid}", index["root_path"]!.GetValue<string>());
        var item = (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/items/7?q=seven"))!;
        Assert.Equal(7, item["item_id"]!.GetValue<int>());

        using var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://{server.BaseAddress.Authority}/content/{guid}/ws"), CancellationToken.None);
        for (var i = 0; i < 3; i++)
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes($"ping {i}"), WebSocketMessageType.Text, true, CancellationToken.None);
            var buffer = new byte[256];
            var received = await socket.ReceiveAsync(buffer, CancellationToken.None);
            Assert.Equal($"echo: ping {i}", Encoding.UTF8.GetString(buffer, 0, received.Count));
        }
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "done", CancellationToken.None);
    }

    [Fact]
    public async Task Notebook_is_rendered_at_deploy_and_served_as_html()
    {
        var guid = await DeploySampleAsync("notebook");
        using var response = await server.Anonymous.GetAsync($"content/{guid}/");
        Assert.Equal("text/html", response.Content.Headers.ContentType!.MediaType);
        var html = await response.Content.ReadAsStringAsync();
        Assert.Contains("Connect notebook sample", html);
        Assert.Contains("The sum of 1..100 is 5050", html);
        var content = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}"))!;
        Assert.Equal("jupyter-static", content["app_mode"]!.GetValue<string>());
        Assert.StartsWith("3.11.", content["py_version"]!.GetValue<string>());
    }

    [Fact]
    public async Task Access_type_decides_who_may_view()
    {
        var guid = await DeploySampleAsync("static-site", accessType: "acl");
        using var anonymous = await server.Anonymous.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        using var owner = await server.Admin.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.OK, owner.StatusCode);

        var viewerKey = await server.CreateUserWithKeyAsync("e2e-viewer-" + Guid.NewGuid().ToString("N")[..6], "viewer");
        using var viewer = server.NewClient(viewerKey);
        using var denied = await viewer.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.Forbidden, denied.StatusCode);

        await server.Admin.PatchContentAsync(guid, new JsonObject { ["access_type"] = "logged_in" });
        using var loggedIn = await viewer.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.OK, loggedIn.StatusCode);
        using var stillAnonymous = await server.Anonymous.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.Unauthorized, stillAnonymous.StatusCode);

        await server.Admin.PatchContentAsync(guid, new JsonObject { ["access_type"] = "all" });
        using var everyone = await server.Anonymous.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.OK, everyone.StatusCode);
    }

    [Fact]
    public async Task Older_bundles_are_kept_so_redeploying_one_rolls_back()
    {
        var guid = (await server.Admin.CreateContentAsync("e2e-rollback", "all"))["guid"]!.GetValue<string>();
        var v1 = await server.Admin.DeployAsync(guid, Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>version one</p>" }, primaryHtml: "index.html"));
        await server.Admin.DeployAsync(guid, Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>version two</p>" }, primaryHtml: "index.html"));
        Assert.Contains("version two", await server.Anonymous.GetStringAsync($"content/{guid}/"));

        var (task, _) = await server.Admin.WaitForTaskAsync(await server.Admin.StartDeployAsync(guid, v1));
        Assert.Equal(0, task["code"]!.GetValue<int>());
        Assert.Contains("version one", await server.Anonymous.GetStringAsync($"content/{guid}/"));
        var bundles = (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/bundles"))!;
        Assert.Equal(v1, Assert.Single(bundles, b => b!["active"]!.GetValue<bool>())!["id"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("bad-md5")]
    [InlineData("no-manifest")]
    [InlineData("escaping-entry")]
    [InlineData("missing-entrypoint")]
    public async Task A_bad_bundle_fails_its_task_and_the_active_bundle_keeps_serving(string kind)
    {
        var guid = (await server.Admin.CreateContentAsync("e2e-bad-" + kind, "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>good</p>" }, primaryHtml: "index.html"));

        byte[] bad = kind switch
        {
            "bad-md5" => Bundles.TarGz(new Dictionary<string, byte[]>
            {
                ["index.html"] = "<p>evil</p>"u8.ToArray(),
                ["manifest.json"] = """{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{"index.html":{"checksum":"00000000000000000000000000000000"}}}"""u8.ToArray(),
            }),
            "no-manifest" => Bundles.TarGz(new Dictionary<string, byte[]> { ["index.html"] = "<p>evil</p>"u8.ToArray() }),
            "escaping-entry" => Bundles.TarGz(new Dictionary<string, byte[]>
            {
                ["../../escaped.html"] = "<p>evil</p>"u8.ToArray(),
                ["manifest.json"] = """{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{}}"""u8.ToArray(),
            }),
            _ => Bundles.Create("python-api", new Dictionary<string, string> { ["requirements.txt"] = "" }, pythonVersion: "3.11.2"),
        };
        var bundleId = await server.Admin.UploadBundleAsync(guid, bad);
        var (task, output) = await server.Admin.WaitForTaskAsync(await server.Admin.StartDeployAsync(guid, bundleId));
        Assert.Equal(1, task["code"]!.GetValue<int>());
        Assert.False(string.IsNullOrWhiteSpace(task["error"]!.GetValue<string>()));
        Assert.Contains(output, l => l.StartsWith("Error: ", StringComparison.Ordinal));

        Assert.Contains("good", await server.Anonymous.GetStringAsync($"content/{guid}/"));
        Assert.False(File.Exists(Path.Combine(server.DataDir, "escaped.html")));
        Assert.False(File.Exists(Path.Combine(server.DataDir, "apps", "escaped.html")));
        var content = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}"))!;
        Assert.NotEqual(bundleId, content["bundle_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Unsupported_python_version_fails_the_task_with_a_clear_message()
    {
        var guid = (await server.Admin.CreateContentAsync("e2e-python-2", "all"))["guid"]!.GetValue<string>();
        var bundle = Bundles.Create("python-api", new Dictionary<string, string> { ["app.py"] = "app = None\n", ["requirements.txt"] = "" }, entrypoint: "app", pythonVersion: "2.7.18");
        var (task, _) = await server.Admin.WaitForTaskAsync(await server.Admin.StartDeployAsync(guid, await server.Admin.UploadBundleAsync(guid, bundle)));
        Assert.Equal(1, task["code"]!.GetValue<int>());
        Assert.Contains("2.7.18", task["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task An_app_that_cannot_start_gets_a_502_page_with_its_log_for_the_owner_only()
    {
        var guid = (await server.Admin.CreateContentAsync("e2e-broken", "all"))["guid"]!.GetValue<string>();
        var bundle = Bundles.Create("python-api", new Dictionary<string, string>
        {
            ["app.py"] = "import definitely_missing_module_xyz\napp = None\n",
            ["requirements.txt"] = "",
        }, entrypoint: "app", pythonVersion: "3.11.2");
        await server.Admin.DeployAsync(guid, bundle);

        using var owner = await server.Admin.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.BadGateway, owner.StatusCode);
        var page = await owner.Content.ReadAsStringAsync();
        Assert.Contains("failed to start", page);
        Assert.Contains("definitely_missing_module_xyz", page);

        using var viewer = await server.Anonymous.GetAsync($"content/{guid}/");
        Assert.Equal(HttpStatusCode.BadGateway, viewer.StatusCode);
        Assert.DoesNotContain("definitely_missing_module_xyz", await viewer.Content.ReadAsStringAsync());
    }
}
