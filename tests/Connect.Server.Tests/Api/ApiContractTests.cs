using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Api;

/// <summary>The publisher API as Posit's clients read it (spec §0–§3), against a real node.</summary>
public sealed class ApiContractTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    private static async Task<JsonObject> ErrorOf(HttpResponseMessage response)
    {
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
        var body = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.True(body.ContainsKey("code") && body.ContainsKey("error") && body.ContainsKey("payload"), body.ToJsonString());
        return body;
    }

    [Fact]
    public async Task Server_settings_reports_a_parseable_version_below_the_draft_gate()
    {
        using var response = await server.Anonymous.GetAsync("__api__/server_settings");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("application/json", response.Content.Headers.ContentType!.ToString());
        var version = (await response.Content.ReadFromJsonAsync<JsonObject>())!["version"]!.GetValue<string>();
        var m = Regex.Match(version, @"^(\d{4})\.(\d{2})\.(\d+)$");
        Assert.True(m.Success, version);
        Assert.True(string.CompareOrdinal(version, "2025.06.0") < 0 && string.CompareOrdinal(version, "2024.01.0") >= 0, version);
    }

    [Fact]
    public async Task V1_user_with_a_bad_key_is_401_code_30()
    {
        using var client = server.NewClient("not-a-key");
        using var response = await client.GetAsync("__api__/v1/user");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        Assert.Equal(30, (await ErrorOf(response))["code"]!.GetValue<int>());
    }

    [Fact]
    public async Task V1_user_without_a_key_is_401_with_the_error_shape()
    {
        using var response = await server.Anonymous.GetAsync("__api__/v1/user");
        Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        await ErrorOf(response);
    }

    [Fact]
    public async Task V1_user_describes_the_caller()
    {
        var user = (await server.Admin.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!;
        Assert.Equal("admin", user["username"]!.GetValue<string>());
        Assert.Equal("administrator", user["user_role"]!.GetValue<string>());
        Assert.True(Guid.TryParse(user["guid"]!.GetValue<string>(), out _));
        foreach (var field in new[] { "email", "first_name", "last_name", "created_time", "updated_time", "active_time", "confirmed", "locked" })
        {
            Assert.True(user.ContainsKey(field), field);
        }
    }

    [Fact]
    public async Task Bootstrap_works_once_and_rejects_bad_tokens()
    {
        async Task<HttpResponseMessage> Bootstrap(string token)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "__api__/v1/experimental/bootstrap");
            request.Headers.TryAddWithoutValidation("Authorization", "Connect-Bootstrap " + token);
            return await server.Anonymous.SendAsync(request);
        }
        var now = DateTimeOffset.UtcNow;
        using var again = await Bootstrap(BootstrapJwt.Create(server.BootstrapSecret, now));
        Assert.Equal(HttpStatusCode.Forbidden, again.StatusCode);
        await ErrorOf(again);
        using var wrongSecret = await Bootstrap(BootstrapJwt.Create(new byte[32], now));
        Assert.Equal(HttpStatusCode.Unauthorized, wrongSecret.StatusCode);
        Assert.Contains("signature", (await ErrorOf(wrongSecret))["error"]!.GetValue<string>());
        using var expired = await Bootstrap(BootstrapJwt.Create(server.BootstrapSecret, now.AddHours(-1)));
        Assert.Equal(HttpStatusCode.Unauthorized, expired.StatusCode);
        Assert.Contains("expired", (await ErrorOf(expired))["error"]!.GetValue<string>());
        using var wrongScope = await Bootstrap(BootstrapJwt.Create(server.BootstrapSecret, now, scope: "admin"));
        Assert.Equal(HttpStatusCode.Unauthorized, wrongScope.StatusCode);
    }

    [Fact]
    public async Task Content_create_get_list_patch_delete()
    {
        var created = await server.Admin.CreateContentAsync("contract-crud");
        foreach (var field in new[] { "guid", "id", "name", "title", "content_url", "dashboard_url", "app_mode", "access_type", "owner_guid", "bundle_id", "created_time" })
        {
            Assert.True(created.ContainsKey(field), field);
        }
        var guid = created["guid"]!.GetValue<string>();
        Assert.Equal("unknown", created["app_mode"]!.GetValue<string>());
        Assert.Equal("acl", created["access_type"]!.GetValue<string>());
        Assert.Equal(new Uri(server.BaseAddress, $"content/{guid}/").ToString(), created["content_url"]!.GetValue<string>());
        Assert.EndsWith($"/connect/#/apps/{guid}", created["dashboard_url"]!.GetValue<string>());
        Assert.Matches(@"^\d+$", created["id"]!.GetValue<string>());

        var byName = (await server.Admin.GetFromJsonAsync<JsonArray>("__api__/v1/content?name=contract-crud"))!;
        Assert.Equal(guid, Assert.Single(byName)!["guid"]!.GetValue<string>());
        Assert.Empty((await server.Admin.GetFromJsonAsync<JsonArray>("__api__/v1/content?name=no-such-name"))!);

        var withOwner = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}?include=owner,tags,vanity_url"))!;
        Assert.Equal("admin", withOwner["owner"]!["username"]!.GetValue<string>());
        Assert.True(withOwner.ContainsKey("vanity_url") && withOwner.ContainsKey("tags"));

        var patched = await server.Admin.PatchContentAsync(guid, new JsonObject { ["title"] = "Contract CRUD", ["idle_timeout"] = 30, ["load_factor"] = 0.25 });
        Assert.Equal("Contract CRUD", patched["title"]!.GetValue<string>());
        Assert.Equal(30, patched["idle_timeout"]!.GetValue<int>());
        Assert.Equal(0.25, patched["load_factor"]!.GetValue<double>());
        patched = await server.Admin.PatchContentAsync(guid, new JsonObject { ["idle_timeout"] = null });
        Assert.Null(patched["idle_timeout"]);
        Assert.Equal("Contract CRUD", patched["title"]!.GetValue<string>());

        // rsconnect --app-id with a numeric id: the legacy lookup, of which it reads the guid.
        var legacy = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/applications/{created["id"]}"))!;
        Assert.Equal(guid, legacy["guid"]!.GetValue<string>());
        using var noSuchApp = await server.Admin.GetAsync("__api__/applications/999999");
        Assert.Equal(HttpStatusCode.NotFound, noSuchApp.StatusCode);

        using var delete = await server.Admin.DeleteAsync($"__api__/v1/content/{guid}");
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using var gone = await server.Admin.GetAsync($"__api__/v1/content/{guid}");
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);
        Assert.Equal(4, (await ErrorOf(gone))["code"]!.GetValue<int>());
    }

    [Theory]
    [InlineData("""{"access_type":"everyone"}""")]
    [InlineData("""{"name":"has spaces"}""")]
    [InlineData("""{"max_processes":0}""")]
    [InlineData("""{"load_factor":1.5}""")]
    [InlineData("""{"min_processes":5,"max_processes":2}""")]
    [InlineData("""{"idle_timeout":"soon"}""")]
    [InlineData("""{"init_timeout":100000}""")]
    [InlineData("""[1,2]""")]
    [InlineData("""not json""")]
    public async Task Invalid_patches_are_400_and_change_nothing(string body)
    {
        var created = await server.Admin.CreateContentAsync("contract-bad-" + Guid.NewGuid().ToString("N")[..8]);
        var guid = created["guid"]!.GetValue<string>();
        using var response = await server.Admin.PatchAsync($"__api__/v1/content/{guid}", new StringContent(body, Encoding.UTF8, "application/json"));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ErrorOf(response);
        var after = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}"))!;
        Assert.Equal(created["name"]!.ToJsonString(), after["name"]!.ToJsonString());
        Assert.Equal("acl", after["access_type"]!.GetValue<string>());
        Assert.Null(after["max_processes"]);
    }

    [Fact]
    public async Task Duplicate_names_conflict_and_missing_name_is_rejected()
    {
        await server.Admin.CreateContentAsync("contract-dup");
        using var dup = await server.Admin.PostAsync("__api__/v1/content", ConnectClient.Json(new JsonObject { ["name"] = "contract-dup" }));
        Assert.Equal(HttpStatusCode.Conflict, dup.StatusCode);
        await ErrorOf(dup);
        using var noName = await server.Admin.PostAsync("__api__/v1/content", ConnectClient.Json(new JsonObject { ["title"] = "x" }));
        Assert.Equal(HttpStatusCode.BadRequest, noName.StatusCode);
    }

    [Fact]
    public async Task Viewers_cannot_publish_and_cannot_see_others_acl_content()
    {
        var viewerKey = await server.CreateUserWithKeyAsync("contract-viewer", "viewer");
        using var viewer = server.NewClient(viewerKey);
        using var create = await viewer.PostAsync("__api__/v1/content", ConnectClient.Json(new JsonObject { ["name"] = "viewer-item" }));
        Assert.Equal(HttpStatusCode.Forbidden, create.StatusCode);
        await ErrorOf(create);

        var hidden = await server.Admin.CreateContentAsync("contract-hidden", "acl");
        var shared = await server.Admin.CreateContentAsync("contract-shared", "logged_in");
        using var getHidden = await viewer.GetAsync($"__api__/v1/content/{hidden["guid"]}");
        Assert.Equal(HttpStatusCode.NotFound, getHidden.StatusCode);
        var visible = (await viewer.GetFromJsonAsync<JsonArray>("__api__/v1/content"))!.Select(c => c!["guid"]!.GetValue<string>()).ToList();
        Assert.Contains(shared["guid"]!.GetValue<string>(), visible);
        Assert.DoesNotContain(hidden["guid"]!.GetValue<string>(), visible);
        var sharedSeen = (await viewer.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{shared["guid"]}"))!;
        Assert.Equal("viewer", sharedSeen["app_role"]!.GetValue<string>());
        using var patch = await viewer.PatchAsync($"__api__/v1/content/{shared["guid"]}", ConnectClient.Json(new JsonObject { ["title"] = "mine now" }));
        Assert.Equal(HttpStatusCode.Forbidden, patch.StatusCode);
    }

    [Fact]
    public async Task Bundles_upload_chunked_without_content_type_list_get_download_delete()
    {
        var guid = (await server.Admin.CreateContentAsync("contract-bundles"))["guid"]!.GetValue<string>();
        var bundle = Bundles.FromSample("static-site");

        // rsconnect streams a temp file: chunked transfer encoding, no Content-Type, no Content-Length.
        using var chunked = new StreamContent(new NonSeekableStream(bundle));
        Assert.Null(chunked.Headers.ContentLength is 0 ? null : chunked.Headers.ContentType);
        using var request = new HttpRequestMessage(HttpMethod.Post, $"__api__/v1/content/{guid}/bundles") { Content = chunked };
        request.Headers.TransferEncodingChunked = true;
        using var uploaded = await server.Admin.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, uploaded.StatusCode);
        var first = (await uploaded.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal(bundle.Length, first["size"]!.GetValue<long>());
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(bundle)), first["metadata"]!["archive_md5"]!.GetValue<string>());
        Assert.False(first["active"]!.GetValue<bool>());

        // posit-publisher sends application/gzip.
        using var typed = new ByteArrayContent(bundle);
        typed.Headers.ContentType = new MediaTypeHeaderValue("application/gzip");
        using var second = await server.Admin.PostAsync($"__api__/v1/content/{guid}/bundles", typed);
        var secondId = (await second.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();

        var list = (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/bundles"))!;
        Assert.Equal(2, list.Count);
        var fetched = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}/bundles/{first["id"]}"))!;
        Assert.Equal(first["id"]!.GetValue<string>(), fetched["id"]!.GetValue<string>());
        var downloaded = await server.Admin.GetByteArrayAsync($"__api__/v1/content/{guid}/bundles/{first["id"]}/download");
        Assert.Equal(bundle, downloaded);

        using var deleted = await server.Admin.DeleteAsync($"__api__/v1/content/{guid}/bundles/{secondId}");
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        Assert.Single((await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/bundles"))!);
    }

    [Fact]
    public async Task Multipart_uploads_carry_the_archive_and_its_source_metadata()
    {
        var guid = (await server.Admin.CreateContentAsync("contract-multipart"))["guid"]!.GetValue<string>();
        var bundle = Bundles.FromSample("static-site");

        // The shape rsconnect sends with --metadata or from a git checkout.
        using var form = new MultipartFormDataContent();
        var archive = new ByteArrayContent(bundle);
        archive.Headers.ContentType = new MediaTypeHeaderValue("application/x-tar");
        form.Add(archive, "archive", "bundle.tar.gz");
        form.Add(new StringContent("""{"source":"git","source_repo":"https://example.com/r.git","source_branch":"main","source_commit":"abc123"}"""), "metadata");
        using var response = await server.Admin.PostAsync($"__api__/v1/content/{guid}/bundles", form);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var created = (await response.Content.ReadFromJsonAsync<JsonObject>())!;
        Assert.Equal(bundle.Length, created["size"]!.GetValue<long>());
        var metadata = created["metadata"]!;
        Assert.Equal("git", metadata["source"]!.GetValue<string>());
        Assert.Equal("https://example.com/r.git", metadata["source_repo"]!.GetValue<string>());
        Assert.Equal("main", metadata["source_branch"]!.GetValue<string>());
        Assert.Equal("abc123", metadata["source_commit"]!.GetValue<string>());
        var fetched = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}/bundles/{created["id"]}"))!;
        Assert.Equal("abc123", fetched["metadata"]!["source_commit"]!.GetValue<string>());
        Assert.Equal(bundle, await server.Admin.GetByteArrayAsync($"__api__/v1/content/{guid}/bundles/{created["id"]}/download"));

        using var noArchive = new MultipartFormDataContent { { new StringContent("{}"), "metadata" } };
        using var missing = await server.Admin.PostAsync($"__api__/v1/content/{guid}/bundles", noArchive);
        Assert.Equal(HttpStatusCode.BadRequest, missing.StatusCode);
        Assert.Contains("archive", (await ErrorOf(missing))["error"]!.GetValue<string>());

        using var badMetadata = new MultipartFormDataContent { { new ByteArrayContent(bundle), "archive", "bundle.tar.gz" }, { new StringContent("{not json"), "metadata" } };
        using var bad = await server.Admin.PostAsync($"__api__/v1/content/{guid}/bundles", badMetadata);
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Single((await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/bundles"))!);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(server.DataDir, "tmp", "uploads")));
    }

    [Fact]
    public async Task A_body_that_is_not_an_archive_is_rejected_and_nothing_is_kept()
    {
        var guid = (await server.Admin.CreateContentAsync("contract-garbage"))["guid"]!.GetValue<string>();
        using var response = await server.Admin.PostAsync($"__api__/v1/content/{guid}/bundles", new ByteArrayContent(Encoding.UTF8.GetBytes("this is not a tarball")));
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        await ErrorOf(response);
        Assert.Empty((await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/bundles"))!);
        Assert.Empty(Directory.EnumerateFiles(Path.Combine(server.DataDir, "tmp", "uploads")));
    }

    [Fact]
    public async Task Deploy_returns_202_and_the_task_long_polls_with_first_and_last()
    {
        var guid = (await server.Admin.CreateContentAsync("contract-deploy"))["guid"]!.GetValue<string>();
        var bundleId = await server.Admin.UploadBundleAsync(guid, Bundles.FromSample("static-site"));
        using var deploy = await server.Admin.PostAsync($"__api__/v1/content/{guid}/deploy", ConnectClient.Json(new JsonObject { ["bundle_id"] = bundleId }));
        Assert.Equal(HttpStatusCode.Accepted, deploy.StatusCode);
        var taskId = (await deploy.Content.ReadFromJsonAsync<JsonObject>())!["task_id"]!.GetValue<string>();

        var (task, output) = await server.Admin.WaitForTaskAsync(taskId);
        Assert.Equal(0, task["code"]!.GetValue<int>());
        Assert.Contains("Deployment completed successfully.", output);
        var full = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/tasks/{taskId}"))!;
        Assert.Equal(output, full["output"]!.AsArray().Select(l => l!.GetValue<string>()));
        Assert.Equal(output.Count, full["last"]!.GetValue<int>());
        var tail = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/tasks/{taskId}?first=2"))!;
        Assert.Equal(output.Skip(2), tail["output"]!.AsArray().Select(l => l!.GetValue<string>()));
        Assert.Equal(output.Count, tail["last"]!.GetValue<int>());

        var content = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}"))!;
        Assert.Equal(bundleId, content["bundle_id"]!.GetValue<string>());
        Assert.Equal("static", content["app_mode"]!.GetValue<string>());
        Assert.NotNull(content["last_deployed_time"]);

        using var noBundle = await server.Admin.PostAsync($"__api__/v1/content/{guid}/deploy", ConnectClient.Json(new JsonObject { ["bundle_id"] = "999999" }));
        Assert.Equal(HttpStatusCode.NotFound, noBundle.StatusCode);
        using var nanWait = await server.Admin.GetAsync($"__api__/v1/tasks/{taskId}?wait=NaN");
        Assert.Equal(HttpStatusCode.OK, nanWait.StatusCode);
        using var activeDelete = await server.Admin.DeleteAsync($"__api__/v1/content/{guid}/bundles/{bundleId}");
        Assert.Equal(HttpStatusCode.BadRequest, activeDelete.StatusCode);
        Assert.Contains("active bundle", (await ErrorOf(activeDelete))["error"]!.GetValue<string>());
        using var unknownTask = await server.Admin.GetAsync("__api__/v1/tasks/nope");
        Assert.Equal(HttpStatusCode.NotFound, unknownTask.StatusCode);
    }

    [Fact]
    public async Task Environment_variables_are_write_only_and_encrypted_at_rest()
    {
        var guid = (await server.Admin.CreateContentAsync("contract-env"))["guid"]!.GetValue<string>();
        const string secret = "s3cret-value-that-must-not-leak";
        using var patch = await server.Admin.PatchAsync($"__api__/v1/content/{guid}/environment",
            ConnectClient.Json(JsonNode.Parse($$"""[{"name":"API_TOKEN","value":"{{secret}}"},{"name":"OTHER","value":"x"}]""")!));
        Assert.Equal(HttpStatusCode.OK, patch.StatusCode);
        var patchBody = await patch.Content.ReadAsStringAsync();
        Assert.Equal("""["API_TOKEN","OTHER"]""", patchBody);
        var get = await server.Admin.GetStringAsync($"__api__/v1/content/{guid}/environment");
        Assert.Equal("""["API_TOKEN","OTHER"]""", get);
        Assert.DoesNotContain(secret, get);

        // Nothing in the data directory holds the plaintext: not the catalog, its WAL, nor any log.
        foreach (var file in Directory.EnumerateFiles(server.DataDir, "*", SearchOption.AllDirectories))
        {
            var bytes = await File.ReadAllBytesAsync(file);
            Assert.True(bytes.AsSpan().IndexOf(Encoding.UTF8.GetBytes(secret)) < 0, $"{file} contains the secret in plaintext");
        }

        using var remove = await server.Admin.PatchAsync($"__api__/v1/content/{guid}/environment", ConnectClient.Json(JsonNode.Parse("""[{"name":"OTHER","value":null}]""")!));
        Assert.Equal("""["API_TOKEN"]""", await remove.Content.ReadAsStringAsync());
        using var clear = await server.Admin.PutAsync($"__api__/v1/content/{guid}/environment", ConnectClient.Json(new JsonArray()));
        Assert.Equal("[]", await clear.Content.ReadAsStringAsync());
        using var bad = await server.Admin.PatchAsync($"__api__/v1/content/{guid}/environment", ConnectClient.Json(JsonNode.Parse("""[{"name":"1BAD","value":"x"}]""")!));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);
        await ErrorOf(bad);
    }

    [Fact]
    public async Task Python_installations_of_this_host_are_listed()
    {
        var python = (await server.Admin.GetFromJsonAsync<JsonObject>("__api__/v1/server_settings/python"))!;
        var versions = python["installations"]!.AsArray().Select(i => i!["version"]!.GetValue<string>()).ToList();
        Assert.Contains(versions, v => v.StartsWith("3.11.", StringComparison.Ordinal));
        Assert.True(python["api_enabled"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Unknown_api_endpoints_are_404_json()
    {
        using var response = await server.Admin.GetAsync("__api__/v1/no/such/thing");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(2, (await ErrorOf(response))["code"]!.GetValue<int>());
    }

    [Fact]
    public async Task Api_keys_of_the_caller_are_listed_without_secrets()
    {
        var keys = (await server.Admin.GetFromJsonAsync<JsonArray>("__api__/v1/user/api_keys"))!;
        var key = Assert.Single(keys)!;
        Assert.Equal("bootstrap", key["name"]!.GetValue<string>());
        Assert.DoesNotContain(server.AdminKey, keys.ToJsonString());
    }

    /// <summary>A stream without a length, so HttpClient has to send it chunked, as Python's http.client does with a file.</summary>
    private sealed class NonSeekableStream(byte[] data) : MemoryStream(data)
    {
        public override bool CanSeek => false;
    }
}
