using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Api;

/// <summary>
/// A node where the publisher alice owns A (a Flask probe that hands out its own CONNECT_API_KEY), B (an acl static
/// site) and C (a public static site). The items are deployed once, on first use.
/// </summary>
public sealed class ScopedKeyFixture : ConnectServerFixture
{
    private static readonly Dictionary<string, string> Probe = new()
    {
        ["app.py"] = """
            import os
            from flask import Flask, jsonify

            app = Flask(__name__)

            @app.get("/key")
            def key():
                return jsonify(key=os.environ["CONNECT_API_KEY"])
            """,
        ["requirements.txt"] = "",
    };

    private readonly SemaphoreSlim _gate = new(1, 1);
    private Items? _items;

    public sealed record Items(HttpClient Alice, JsonObject A, JsonObject B, JsonObject C, string DeployTaskOfA, string DeployTaskOfB);

    public async Task<Items> ItemsAsync()
    {
        await _gate.WaitAsync();
        try
        {
            return _items ??= await CreateItemsAsync();
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<Items> CreateItemsAsync()
    {
        var alice = NewClient(await CreateUserWithKeyAsync("alice", "publisher"));
        var a = await alice.CreateContentAsync("scoped-a", "acl");
        var b = await alice.CreateContentAsync("scoped-b", "acl");
        var c = await alice.CreateContentAsync("scoped-c", "all");
        var taskA = await DeployAsync(alice, a, Bundles.Create("python-api", Probe, entrypoint: "app", pythonVersion: "3.11.2"));
        var site = Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>site</p>" }, primaryHtml: "index.html");
        var taskB = await DeployAsync(alice, b, site);
        await DeployAsync(alice, c, site);
        return new Items(alice, a, b, c, taskA, taskB);
    }

    private static async Task<string> DeployAsync(HttpClient client, JsonObject item, byte[] bundle)
    {
        var guid = item["guid"]!.GetValue<string>();
        var task = await client.StartDeployAsync(guid, await client.UploadBundleAsync(guid, bundle));
        var (result, output) = await client.WaitForTaskAsync(task);
        Assert.True(result["code"]!.GetValue<int>() == 0, string.Join('\n', output));
        return task;
    }
}

/// <summary>The CONNECT_API_KEY of a content process is worth its own item and nothing more (README, API keys).</summary>
public sealed class ScopedKeyTests(ScopedKeyFixture server) : IClassFixture<ScopedKeyFixture>
{
    private static string Guid(JsonObject item) => item["guid"]!.GetValue<string>();

    /// <summary>The key of A's running process, as the process itself reads it (starting one if needed).</summary>
    private static async Task<string> ProcessKeyAsync(ScopedKeyFixture.Items items) =>
        (await items.Alice.GetFromJsonAsync<JsonObject>($"content/{Guid(items.A)}/key"))!["key"]!.GetValue<string>();

    private static async Task AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, int code)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"{response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {text}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.Equal(code, body["code"]!.GetValue<int>());
        Assert.False(string.IsNullOrEmpty(body["error"]!.GetValue<string>()));
        Assert.True(body.ContainsKey("payload"));
    }

    [Fact]
    public async Task A_process_key_reads_and_changes_its_own_item_like_its_owner()
    {
        var items = await server.ItemsAsync();
        using var key = server.NewClient(await ProcessKeyAsync(items));
        var a = Guid(items.A);

        // What posit-sdk's Client() does inside content.
        var me = (await key.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!;
        Assert.Equal("alice", me["username"]!.GetValue<string>());
        using (var settings = await key.GetAsync("__api__/server_settings"))
        {
            Assert.Equal(HttpStatusCode.OK, settings.StatusCode);
        }

        var read = (await key.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{a}"))!;
        Assert.Equal("owner", read["app_role"]!.GetValue<string>());
        var legacy = (await key.GetFromJsonAsync<JsonObject>($"__api__/applications/{items.A["id"]}"))!;
        Assert.Equal(a, legacy["guid"]!.GetValue<string>());
        Assert.NotEmpty((await key.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{a}/bundles"))!);
        Assert.NotEmpty((await key.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{a}/jobs"))!);
        Assert.NotNull(await key.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{a}/environment"));
        var task = (await key.GetFromJsonAsync<JsonObject>($"__api__/v1/tasks/{items.DeployTaskOfA}"))!;
        Assert.True(task["finished"]!.GetValue<bool>());

        var patched = await key.PatchContentAsync(a, new JsonObject { ["title"] = "Retitled by its process" });
        Assert.Equal("Retitled by its process", patched["title"]!.GetValue<string>());
        Assert.Equal("Retitled by its process", (await items.Alice.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{a}"))!["title"]!.GetValue<string>());

        var listed = (await key.GetFromJsonAsync<JsonArray>("__api__/v1/content"))!;
        Assert.Equal([a], listed.Select(i => i!["guid"]!.GetValue<string>()));
        // The owner's own key still sees all three.
        Assert.Equal(3, (await items.Alice.GetFromJsonAsync<JsonArray>("__api__/v1/content"))!.Count);
    }

    [Fact]
    public async Task A_process_key_is_refused_for_everything_beyond_its_item()
    {
        var items = await server.ItemsAsync();
        using var key = server.NewClient(await ProcessKeyAsync(items));
        var a = Guid(items.A);
        var b = Guid(items.B);

        // Another item of the same owner: every content endpoint answers 403, code 10.
        foreach (var path in new[] { $"v1/content/{b}", $"v1/content/{b}/bundles", $"v1/content/{b}/environment", $"v1/content/{b}/jobs",
                     $"v1/content/{System.Guid.NewGuid()}", $"applications/{items.B["id"]}", $"applications/{b}" })
        {
            using var get = await key.GetAsync("__api__/" + path);
            await AssertErrorAsync(get, HttpStatusCode.Forbidden, 10);
        }
        using (var patch = await key.PatchAsync($"__api__/v1/content/{b}", ConnectClient.Json(new JsonObject { ["title"] = "hijacked" })))
        {
            await AssertErrorAsync(patch, HttpStatusCode.Forbidden, 10);
        }
        using (var deploy = await key.PostAsync($"__api__/v1/content/{b}/deploy", ConnectClient.Json(new JsonObject())))
        {
            await AssertErrorAsync(deploy, HttpStatusCode.Forbidden, 10);
        }
        using (var env = await key.PatchAsync($"__api__/v1/content/{b}/environment", ConnectClient.Json(JsonNode.Parse("""[{"name":"X","value":"1"}]""")!)))
        {
            await AssertErrorAsync(env, HttpStatusCode.Forbidden, 10);
        }
        using (var upload = await key.PostAsync($"__api__/v1/content/{b}/bundles", new ByteArrayContent([1, 2, 3])))
        {
            await AssertErrorAsync(upload, HttpStatusCode.Forbidden, 10);
        }
        Assert.NotEqual("hijacked", (await items.Alice.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{b}"))!["title"]?.GetValue<string>());

        // Its owner's tasks of other items are not its business.
        using (var task = await key.GetAsync($"__api__/v1/tasks/{items.DeployTaskOfB}"))
        {
            await AssertErrorAsync(task, HttpStatusCode.NotFound, 4);
        }

        // Nothing server-wide: no new content, no users, no keys, no bootstrap.
        using (var create = await key.PostAsync("__api__/v1/content", ConnectClient.Json(new JsonObject { ["name"] = "spawned" })))
        {
            await AssertErrorAsync(create, HttpStatusCode.Forbidden, 10);
        }
        foreach (var path in new[] { "v1/users", $"v1/users/{System.Guid.NewGuid()}", "v1/user/api_keys" })
        {
            using var get = await key.GetAsync("__api__/" + path);
            await AssertErrorAsync(get, HttpStatusCode.Forbidden, 10);
        }
        using (var deleteKey = await key.DeleteAsync("__api__/v1/user/api_keys/1"))
        {
            await AssertErrorAsync(deleteKey, HttpStatusCode.Forbidden, 10);
        }
        using (var bootstrap = await key.PostAsync("__api__/v1/experimental/bootstrap", null))
        {
            await AssertErrorAsync(bootstrap, HttpStatusCode.Forbidden, 10);
        }

        // Its own item: everything but deleting it.
        using (var delete = await key.DeleteAsync($"__api__/v1/content/{a}"))
        {
            await AssertErrorAsync(delete, HttpStatusCode.Forbidden, 10);
        }
        using var still = await items.Alice.GetAsync($"__api__/v1/content/{a}");
        Assert.Equal(HttpStatusCode.OK, still.StatusCode);
        Assert.Single((await key.GetFromJsonAsync<JsonArray>("__api__/v1/content"))!);
    }

    [Fact]
    public async Task The_front_end_treats_a_key_scoped_to_another_item_as_no_key()
    {
        var items = await server.ItemsAsync();
        using var key = server.NewClient(await ProcessKeyAsync(items));

        // B is acl: its owner's key opens it, the owner's process key of A does not.
        using (var owner = await items.Alice.GetAsync($"content/{Guid(items.B)}/"))
        {
            Assert.Equal(HttpStatusCode.OK, owner.StatusCode);
        }
        using (var refused = await key.GetAsync($"content/{Guid(items.B)}/"))
        {
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.DoesNotContain("<p>site</p>", await refused.Content.ReadAsStringAsync());
        }
        // C is public: it opens for anyone, with that key too.
        using (var open = await key.GetAsync($"content/{Guid(items.C)}/"))
        {
            Assert.Equal(HttpStatusCode.OK, open.StatusCode);
            Assert.Contains("<p>site</p>", await open.Content.ReadAsStringAsync());
        }
        // Its own (acl) item opens with it.
        using var own = await key.GetAsync($"content/{Guid(items.A)}/key");
        Assert.Equal(HttpStatusCode.OK, own.StatusCode);
    }

    [Fact]
    public async Task A_process_key_is_rejected_once_its_process_has_stopped()
    {
        var items = await server.ItemsAsync();
        var processKey = await ProcessKeyAsync(items);
        using var key = server.NewClient(processKey);
        using (var before = await key.GetAsync("__api__/v1/user"))
        {
            Assert.Equal(HttpStatusCode.OK, before.StatusCode);
        }
        var a = Guid(items.A);
        foreach (var job in (await items.Alice.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{a}/jobs"))!.Where(j => j!["status"]!.GetValue<int>() == 0))
        {
            using var kill = await items.Alice.DeleteAsync($"__api__/v1/content/{a}/jobs/{job!["key"]}");
            Assert.Equal(HttpStatusCode.OK, kill.StatusCode);
        }

        var deadline = DateTime.UtcNow.AddSeconds(15);
        HttpResponseMessage after;
        while (true)
        {
            after = await key.GetAsync("__api__/v1/user");
            if (after.StatusCode == HttpStatusCode.Unauthorized || DateTime.UtcNow > deadline)
            {
                break;
            }
            after.Dispose();
            await Task.Delay(100);
        }
        using (after)
        {
            await AssertErrorAsync(after, HttpStatusCode.Unauthorized, 30);
        }
        using var content = await key.GetAsync($"__api__/v1/content/{a}");
        await AssertErrorAsync(content, HttpStatusCode.Unauthorized, 30);
    }
}
