using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Api;

/// <summary>Scheduler defaults that differ from the built-in ones, so the settings endpoints are seen to report configuration.</summary>
public sealed class PublisherServerFixture : ConnectServerFixture
{
    protected override IEnumerable<string> ExtraArguments =>
        ["--Scheduler:MaxProcesses=5", "--Scheduler:MaxProcessesLimit=7", "--Scheduler:IdleTimeout=45", "--Scheduler:LoadFactor=0.25"];
}

/// <summary>
/// What Posit Publisher (the VS Code extension) and connectapi read before and during a deploy: the settings calls
/// Publisher makes on every deploy and aborts on if one fails, its empty-name content create, and its checksummed upload.
/// </summary>
public sealed class PublisherClientTests(PublisherServerFixture server) : IClassFixture<PublisherServerFixture>
{
    private static async Task<JsonObject> JsonOf(HttpResponseMessage response, HttpStatusCode expected = HttpStatusCode.OK)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{response.RequestMessage?.RequestUri}: {(int)response.StatusCode} {text}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
        return JsonNode.Parse(text)!.AsObject();
    }

    private async Task<JsonObject> GetAsync(string path, HttpStatusCode expected = HttpStatusCode.OK)
    {
        using var response = await server.Admin.GetAsync(path);
        return await JsonOf(response, expected);
    }

    private static void AssertKind(JsonObject o, string field, JsonValueKind kind)
    {
        Assert.True(o.ContainsKey(field), $"missing {field} in {o.ToJsonString()}");
        Assert.Equal(kind, o[field]?.GetValueKind() ?? JsonValueKind.Null);
    }

    private static void AssertError(JsonObject body)
    {
        AssertKind(body, "code", JsonValueKind.Number);
        AssertKind(body, "error", JsonValueKind.String);
        Assert.True(body.ContainsKey("payload"), body.ToJsonString());
    }

    [Fact]
    public async Task Server_settings_has_the_fields_publisher_and_connectapi_read()
    {
        var settings = await GetAsync("__api__/server_settings");
        Assert.Equal("2024.08.0", settings["version"]!.GetValue<string>());
        var license = settings["license"]!.AsObject();
        // allow-apis gates Flask/FastAPI/Plumber in Publisher; this server hosts APIs.
        Assert.True(license["allow-apis"]!.GetValue<bool>());
        Assert.False(license["current-user-execution"]!.GetValue<bool>());
        AssertKind(license, "enable-launcher", JsonValueKind.False);
        Assert.Equal("native", settings["execution_type"]!.GetValue<string>());
        AssertKind(settings, "runtimes", JsonValueKind.Array);
        foreach (var flag in new[] { "git_enabled", "git_available", "enable_runtime_constraints", "enable_image_management",
                     "default_image_selection_enabled", "default_environment_management_selection", "default_r_environment_management",
                     "default_py_environment_management", "oauth_integrations_enabled" })
        {
            Assert.True(settings[flag]?.GetValueKind() is JsonValueKind.True or JsonValueKind.False, $"{flag}: {settings.ToJsonString()}");
        }
    }

    [Fact]
    public async Task Applications_settings_list_access_types_and_run_as()
    {
        var apps = await GetAsync("__api__/server_settings/applications");
        var types = apps["access_types"]!.AsArray().Select(t => t!.GetValue<string>()).ToHashSet();
        Assert.Equal(["acl", "all", "logged_in"], types.Order());
        AssertKind(apps, "run_as", JsonValueKind.String);
        AssertKind(apps, "run_as_group", JsonValueKind.String);
        AssertKind(apps, "run_as_current_user", JsonValueKind.False);
    }

    [Theory]
    [InlineData("__api__/server_settings/scheduler")]
    [InlineData("__api__/server_settings/scheduler/python-fastapi")]
    [InlineData("__api__/server_settings/scheduler/python-shiny")]
    public async Task Scheduler_settings_report_the_configured_defaults_and_limits(string path)
    {
        var s = await GetAsync(path);
        Assert.Equal(0, s["min_processes"]!.GetValue<int>());
        Assert.Equal(5, s["max_processes"]!.GetValue<int>());
        Assert.Equal(20, s["max_conns_per_process"]!.GetValue<int>());
        Assert.Equal(0.25, s["load_factor"]!.GetValue<double>());
        Assert.Equal(60, s["init_timeout"]!.GetValue<int>());
        Assert.Equal(45, s["idle_timeout"]!.GetValue<int>());
        Assert.Equal(7, s["max_processes_limit"]!.GetValue<int>());
        Assert.Equal(7, s["min_processes_limit"]!.GetValue<int>());
        Assert.Equal(3600, s["connection_timeout"]!.GetValue<int>());
        Assert.Equal(3600, s["read_timeout"]!.GetValue<int>());
        // Publisher compares Kubernetes requests against these; 0 is "no limit".
        foreach (var field in new[] { "cpu_request", "max_cpu_request", "cpu_limit", "max_cpu_limit", "memory_request", "max_memory_request",
                     "memory_limit", "max_memory_limit", "amd_gpu_limit", "max_amd_gpu_limit", "nvidia_gpu_limit", "max_nvidia_gpu_limit" })
        {
            AssertKind(s, field, JsonValueKind.Number);
            Assert.Equal(0, s[field]!.GetValue<double>());
        }
    }

    [Theory]
    [InlineData("no-such-mode")]
    [InlineData("unknown")]
    public async Task Scheduler_settings_for_an_unknown_app_mode_is_a_404_error(string mode)
    {
        using var response = await server.Admin.GetAsync($"__api__/server_settings/scheduler/{mode}");
        AssertError(await JsonOf(response, HttpStatusCode.NotFound));
    }

    [Fact]
    public async Task Python_settings_list_installations_and_allow_apis()
    {
        var python = await GetAsync("__api__/v1/server_settings/python");
        AssertKind(python, "api_enabled", JsonValueKind.True);
        foreach (var inst in python["installations"]!.AsArray())
        {
            var i = inst!.AsObject();
            Assert.Matches(@"^\d+\.\d+", i["version"]!.GetValue<string>());
            AssertKind(i, "cluster_name", JsonValueKind.String);
            AssertKind(i, "image_name", JsonValueKind.String);
        }
    }

    [Theory]
    [InlineData("r")]
    [InlineData("quarto")]
    public async Task R_and_quarto_settings_answer_with_no_installations(string runtime)
    {
        var body = await GetAsync($"__api__/v1/server_settings/{runtime}");
        Assert.Empty(body["installations"]!.AsArray());
    }

    [Fact]
    public async Task Nodejs_settings_is_a_404_error_which_publisher_tolerates()
    {
        using var response = await server.Admin.GetAsync("__api__/v1/server_settings/nodejs");
        AssertError(await JsonOf(response, HttpStatusCode.NotFound));
    }

    [Fact]
    public async Task Publisher_settings_calls_all_succeed_in_parallel()
    {
        string[] paths =
        [
            "__api__/v1/user", "__api__/server_settings", "__api__/server_settings/applications", "__api__/server_settings/scheduler",
            "__api__/server_settings/scheduler/python-dash", "__api__/v1/server_settings/python", "__api__/v1/server_settings/r",
            "__api__/v1/server_settings/quarto",
        ];
        var responses = await Task.WhenAll(paths.Select(p => server.Admin.GetAsync(p)));
        foreach (var response in responses)
        {
            using (response)
            {
                await JsonOf(response);
            }
        }
    }

    [Fact]
    public async Task Ping_answers_an_empty_json_object()
    {
        using var response = await server.Anonymous.GetAsync("__ping__");
        var body = await JsonOf(response);
        Assert.Empty(body);
    }

    private async Task<JsonObject> CreateAsync(JsonObject body)
    {
        using var response = await server.Admin.PostAsync("__api__/v1/content", ConnectClient.Json(body));
        return await JsonOf(response);
    }

    [Fact]
    public async Task Empty_name_without_title_gets_a_valid_unique_name()
    {
        var first = await CreateAsync(new JsonObject { ["name"] = "" });
        var second = await CreateAsync(new JsonObject { ["name"] = "" });
        var a = first["name"]!.GetValue<string>();
        var b = second["name"]!.GetValue<string>();
        Assert.Matches("^[A-Za-z0-9_-]{3,64}$", a);
        Assert.Matches("^[A-Za-z0-9_-]{3,64}$", b);
        Assert.NotEqual(a, b);
    }

    [Fact]
    public async Task Empty_name_is_derived_from_the_title_and_kept_unique()
    {
        var title = "Sales Dashboard (Q3) — " + Guid.NewGuid().ToString("N")[..6];
        var first = await CreateAsync(new JsonObject { ["name"] = "", ["title"] = title });
        var second = await CreateAsync(new JsonObject { ["name"] = "", ["title"] = title });
        var a = first["name"]!.GetValue<string>();
        var b = second["name"]!.GetValue<string>();
        Assert.StartsWith("sales-dashboard-q3-", a);
        Assert.StartsWith(a, b);
        Assert.NotEqual(a, b);
        Assert.Matches("^[A-Za-z0-9_-]{3,64}$", b);
        Assert.Equal(title, second["title"]!.GetValue<string>());
    }

    [Fact]
    public async Task Empty_name_from_a_very_long_title_is_cut_to_64()
    {
        var title = string.Concat(Enumerable.Repeat("Long Title ", 20));
        var first = await CreateAsync(new JsonObject { ["name"] = "", ["title"] = title });
        var second = await CreateAsync(new JsonObject { ["name"] = "", ["title"] = title });
        Assert.Matches("^[a-z0-9_-]{3,64}$", first["name"]!.GetValue<string>());
        Assert.Matches("^[a-z0-9_-]{3,64}$", second["name"]!.GetValue<string>());
        Assert.NotEqual(first["name"]!.GetValue<string>(), second["name"]!.GetValue<string>());
    }

    [Fact]
    public async Task Patch_with_an_empty_name_leaves_the_name_unchanged()
    {
        var created = await server.Admin.CreateContentAsync("publisher-patch-" + Guid.NewGuid().ToString("N")[..6]);
        var guid = created["guid"]!.GetValue<string>();
        var patched = await server.Admin.PatchContentAsync(guid, new JsonObject { ["name"] = "", ["title"] = "Renamed by title only" });
        Assert.Equal(created["name"]!.GetValue<string>(), patched["name"]!.GetValue<string>());
        Assert.Equal("Renamed by title only", patched["title"]!.GetValue<string>());
        var fetched = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}"))!;
        Assert.Equal(created["name"]!.GetValue<string>(), fetched["name"]!.GetValue<string>());
    }

    private static byte[] Bundle() => Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<h1>hi</h1>" }, primaryHtml: "index.html");

    private async Task<HttpResponseMessage> UploadAsync(string guid, byte[] body, string checksum)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new("application/gzip");
        using var request = new HttpRequestMessage(HttpMethod.Post, $"__api__/v1/content/{guid}/bundles") { Content = content };
        request.Headers.Add("X-Content-Checksum", checksum);
        return await server.Admin.SendAsync(request);
    }

    private async Task<JsonArray> BundlesOf(string guid) => (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/bundles"))!;

    private Connect.Core.Hosting.DataPaths Paths => new(server.DataDir);

    [Fact]
    public async Task Bundle_upload_with_a_matching_checksum_is_accepted()
    {
        var guid = (await CreateAsync(new JsonObject { ["name"] = "" }))["guid"]!.GetValue<string>();
        var bundle = Bundle();
        using var response = await UploadAsync(guid, bundle, Convert.ToBase64String(MD5.HashData(bundle)));
        var body = await JsonOf(response);
        Assert.Equal(Convert.ToHexStringLower(MD5.HashData(bundle)), body["metadata"]!["archive_md5"]!.GetValue<string>());
        Assert.Single(await BundlesOf(guid));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Bundle_upload_with_a_wrong_or_malformed_checksum_is_400_and_keeps_nothing(bool wellFormed)
    {
        var guid = (await CreateAsync(new JsonObject { ["name"] = "" }))["guid"]!.GetValue<string>();
        var bundle = Bundle();
        var checksum = wellFormed ? Convert.ToBase64String(MD5.HashData([.. bundle, 0])) : "not-base64!";
        using var response = await UploadAsync(guid, bundle, checksum);
        AssertError(await JsonOf(response, HttpStatusCode.BadRequest));
        Assert.Empty(await BundlesOf(guid));
        var dir = Path.GetDirectoryName(Paths.BundleArchive(Guid.Parse(guid), 1))!;
        Assert.True(!Directory.Exists(dir) || Directory.GetFiles(dir, "*", SearchOption.AllDirectories).Length == 0);
        Assert.True(!Directory.Exists(Paths.Uploads) || Directory.GetFiles(Paths.Uploads).Length == 0);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Multipart_bundle_upload_checks_the_checksum_of_the_whole_body(bool matching)
    {
        var guid = (await CreateAsync(new JsonObject { ["name"] = "" }))["guid"]!.GetValue<string>();
        using var form = new MultipartFormDataContent();
        form.Add(new ByteArrayContent(Bundle()), "archive", "bundle.tar.gz");
        form.Add(new StringContent("""{"source":"git"}"""), "metadata");
        var raw = await form.ReadAsByteArrayAsync();
        var checksum = Convert.ToBase64String(MD5.HashData(matching ? raw : [.. raw, 1]));
        using var content = new ByteArrayContent(raw);
        content.Headers.ContentType = form.Headers.ContentType;
        using var request = new HttpRequestMessage(HttpMethod.Post, $"__api__/v1/content/{guid}/bundles") { Content = content };
        request.Headers.Add("X-Content-Checksum", checksum);
        using var response = await server.Admin.SendAsync(request);
        if (matching)
        {
            await JsonOf(response);
            Assert.Single(await BundlesOf(guid));
        }
        else
        {
            AssertError(await JsonOf(response, HttpStatusCode.BadRequest));
            Assert.Empty(await BundlesOf(guid));
        }
    }
}
