using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Api;

/// <summary>
/// Whatever a hostile or buggy client sends to /__api__, the answer is a 4xx in Connect's error shape: never an
/// empty-bodied 400 (clients print nothing useful) and never a 500 (which reads as a server fault).
/// </summary>
public sealed class BadInputTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    private static async Task<JsonObject> AssertErrorAsync(HttpResponseMessage response, HttpStatusCode status, int? code = null)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {text}");
        Assert.StartsWith("application/json", response.Content.Headers.ContentType?.ToString());
        var body = JsonNode.Parse(text)!.AsObject();
        Assert.True(body.ContainsKey("code") && body.ContainsKey("error") && body.ContainsKey("payload"), text);
        Assert.False(string.IsNullOrWhiteSpace(body["error"]!.GetValue<string>()), text);
        if (code is not null)
        {
            Assert.Equal(code, body["code"]!.GetValue<int>());
        }
        return body;
    }

    private async Task<string> ContentGuidAsync(string name) =>
        (await server.Admin.CreateContentAsync(name, "all"))["guid"]!.GetValue<string>();

    private static ByteArrayContent Body(byte[] bytes)
    {
        var content = new ByteArrayContent(bytes);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        return content;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, byte[] body)
    {
        using var request = new HttpRequestMessage(method, path) { Content = Body(body) };
        return await server.Admin.SendAsync(request);
    }

    // ------------------------------------------------------------------ body size

    [Fact]
    public async Task A_50_MB_json_body_gets_413_in_connect_error_shape()
    {
        var huge = new byte[50 * 1024 * 1024];
        Array.Fill(huge, (byte)'a');
        "{\"name\":\""u8.CopyTo(huge);
        "\"}"u8.CopyTo(huge.AsSpan(huge.Length - 2));

        using var request = new HttpRequestMessage(HttpMethod.Post, "__api__/v1/content") { Content = Body(huge) };
        // As curl does for large bodies: the server answers before the body is sent. A client that streams 50 MB
        // without asking may see the connection closed under it instead, as with most servers.
        request.Headers.ExpectContinue = true;
        using var response = await server.Admin.SendAsync(request);

        var error = await AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, 12);
        Assert.Contains("1048576", error["error"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_chunked_json_body_over_the_limit_gets_413_too()
    {
        // No Content-Length: the limit must hold while reading, not only on the header.
        var guid = await ContentGuidAsync("bad-input-chunked");
        var body = Encoding.UTF8.GetBytes("{\"description\":\"" + new string('d', 2 * 1024 * 1024) + "\"}");
        using var content = new StreamContent(new MemoryStream(body));
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var request = new HttpRequestMessage(HttpMethod.Patch, $"__api__/v1/content/{guid}") { Content = content };
        request.Headers.TransferEncodingChunked = true;

        using var response = await server.Admin.SendAsync(request);

        await AssertErrorAsync(response, HttpStatusCode.RequestEntityTooLarge, 12);
    }

    [Fact]
    public async Task Bundle_uploads_are_not_held_to_the_json_limit()
    {
        var guid = await ContentGuidAsync("bad-input-big-bundle");
        var bundle = Bundles.TarGz(new Dictionary<string, byte[]> { ["blob.bin"] = RandomNumberGenerator.GetBytes(3 * 1024 * 1024) });
        Assert.True(bundle.Length > 1024 * 1024);

        var id = await server.Admin.UploadBundleAsync(guid, bundle);

        Assert.False(string.IsNullOrEmpty(id));
    }

    // ------------------------------------------------------------------ malformed bodies

    public static TheoryData<string> MalformedBodies =>
    [
        "invalid-utf8", "truncated", "not-json", "trailing-garbage", "lone-surrogate", "deep-nesting",
    ];

    private static byte[] Malformed(string kind) => kind switch
    {
        "invalid-utf8" => [.. "{\"name\":\""u8, 0xff, 0xfe, 0xc3, .. "\"}"u8],
        "truncated" => "{\"name\":\"x"u8.ToArray(),
        "not-json" => "name=x&access_type=all"u8.ToArray(),
        "trailing-garbage" => "{\"name\":\"x\"} {"u8.ToArray(),
        "lone-surrogate" => "{\"name\":\"\\ud800\",\"title\":\"\\udfff\"}"u8.ToArray(),
        "deep-nesting" => Encoding.ASCII.GetBytes(new string('[', 10_000) + new string(']', 10_000)),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [MemberData(nameof(MalformedBodies))]
    public async Task Malformed_json_bodies_get_400_with_the_error_body_on_every_json_endpoint(string kind)
    {
        var guid = await ContentGuidAsync("bad-input-" + kind);
        var body = Malformed(kind);

        using (var create = await SendAsync(HttpMethod.Post, "__api__/v1/content", body))
        {
            await AssertErrorAsync(create, HttpStatusCode.BadRequest, 12);
        }
        using (var patch = await SendAsync(HttpMethod.Patch, $"__api__/v1/content/{guid}", body))
        {
            await AssertErrorAsync(patch, HttpStatusCode.BadRequest, 12);
        }
        using (var deploy = await SendAsync(HttpMethod.Post, $"__api__/v1/content/{guid}/deploy", body))
        {
            await AssertErrorAsync(deploy, HttpStatusCode.BadRequest, 12);
        }
        using (var environment = await SendAsync(HttpMethod.Patch, $"__api__/v1/content/{guid}/environment", body))
        {
            await AssertErrorAsync(environment, HttpStatusCode.BadRequest, 12);
        }
    }

    [Theory]
    [InlineData("""{"name":5}""")]
    [InlineData("""{"name":"bad-input-types","load_factor":1e400}""")]
    [InlineData("""{"name":"bad-input-types","idle_timeout":99999999999999999999}""")]
    [InlineData("""{"name":"bad-input-types","locked":"yes"}""")]
    [InlineData("""[]""")]
    [InlineData("""null""")]
    [InlineData("")]
    public async Task Wrong_types_in_a_create_body_get_400(string json)
    {
        using var response = await SendAsync(HttpMethod.Post, "__api__/v1/content", Encoding.UTF8.GetBytes(json));

        await AssertErrorAsync(response, HttpStatusCode.BadRequest);
    }

    [Theory]
    [InlineData("""{"bundle_id":{}}""")]
    [InlineData("""{"bundle_id":1e400}""")]
    [InlineData("""{"bundle_id":"-1"}""")]
    public async Task Wrong_types_in_a_deploy_body_get_400(string json)
    {
        var guid = await ContentGuidAsync("bad-input-deploy-" + Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(json)))[..8]);

        using var response = await SendAsync(HttpMethod.Post, $"__api__/v1/content/{guid}/deploy", Encoding.UTF8.GetBytes(json));

        await AssertErrorAsync(response, HttpStatusCode.BadRequest);
    }

    // ------------------------------------------------------------------ ids and query values

    [Theory]
    [InlineData("__api__/v1/tasks/some-task?wait=abc")]
    [InlineData("__api__/v1/tasks/some-task?first=xyz")]
    [InlineData("__api__/v1/users?page_number=abc")]
    [InlineData("__api__/v1/users?page_size=99999999999999999999")]
    [InlineData("__api__/v1/content/00000000-0000-0000-0000-000000000000/jobs/k/log?tail=abc")]
    public async Task Query_values_of_the_wrong_type_get_400_with_the_error_body(string path)
    {
        using var response = await server.Admin.GetAsync(path);

        var error = await AssertErrorAsync(response, HttpStatusCode.BadRequest, 12);
        Assert.Contains("not valid", error["error"]!.GetValue<string>());
    }

    [Theory]
    [InlineData("GET", "__api__/v1/content/not-a-guid")]
    [InlineData("PATCH", "__api__/v1/content/not-a-guid")]
    [InlineData("DELETE", "__api__/v1/content/not-a-guid")]
    [InlineData("GET", "__api__/v1/content/not-a-guid/bundles")]
    [InlineData("GET", "__api__/v1/content/00000000-0000-0000-0000-000000000000/bundles/not-a-number")]
    [InlineData("GET", "__api__/v1/content/00000000-0000-0000-0000-000000000000/bundles/99999999999999999999/download")]
    [InlineData("POST", "__api__/v1/content/not-a-guid/deploy")]
    [InlineData("GET", "__api__/v1/users/not-a-guid")]
    [InlineData("GET", "__api__/applications/not-a-number")]
    [InlineData("DELETE", "__api__/v1/user/api_keys/not-a-number")]
    public async Task Bad_ids_get_a_4xx_with_the_error_body(string method, string path)
    {
        using var request = new HttpRequestMessage(new HttpMethod(method), path) { Content = Body("{}"u8.ToArray()) };
        using var response = await server.Admin.SendAsync(request);

        Assert.InRange((int)response.StatusCode, 400, 499);
        await AssertErrorAsync(response, response.StatusCode);
    }

    // ------------------------------------------------------------------ bootstrap tokens

    public static TheoryData<string> AbsurdClaims =>
    [
        """ "exp":1e30 """,
        """ "exp":-1 """,
        """ "exp":99999999999999999999 """,
        """ "exp":9223372036854775807 """,
        """ "exp":-9223372036854775808 """,
        """ "exp":253402300800 """,
        """ "exp":"2030-01-01" """,
        """ "exp":1.5 """,
        """ "exp":null """,
        """ "exp":{} """,
        """ "exp":4102444800, "iat":1e30 """,
        """ "exp":4102444800, "iat":9223372036854775807 """,
        """ "exp":4102444800, "iat":"now" """,
        """ "exp":4102444800, "nbf":99999999999999999999 """,
        """ "exp":4102444800, "nbf":-9223372036854775808 """,
        """ "exp":4102444800, "nbf":[] """,
    ];

    [Theory]
    [MemberData(nameof(AbsurdClaims))]
    public async Task Bootstrap_tokens_with_absurd_times_get_401_in_connect_error_shape(string claims)
    {
        var payload = $$"""{"iss":"rsconnect-python","aud":"rsconnect","scope":"bootstrap",{{claims}}}""";
        using var request = new HttpRequestMessage(HttpMethod.Post, "__api__/v1/experimental/bootstrap");
        request.Headers.Authorization = new AuthenticationHeaderValue("Connect-Bootstrap", Jwt("""{"alg":"HS256","typ":"JWT"}""", payload));

        using var response = await server.Anonymous.SendAsync(request);

        await AssertErrorAsync(response, HttpStatusCode.Unauthorized, 21);
    }

    [Theory]
    [InlineData("""{"alg":5}""", """{"iss":"rsconnect-python"}""")]
    [InlineData("""[]""", """{}""")]
    [InlineData("""{"alg":"HS256"}""", """[1,2]""")]
    [InlineData("""{"alg":"HS256"}""", "\"just a string\"")]
    public async Task Bootstrap_tokens_with_malformed_headers_or_claims_get_401(string header, string payload)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "__api__/v1/experimental/bootstrap");
        request.Headers.Authorization = new AuthenticationHeaderValue("Connect-Bootstrap", Jwt(header, payload));

        using var response = await server.Anonymous.SendAsync(request);

        await AssertErrorAsync(response, HttpStatusCode.Unauthorized, 21);
    }

    private string Jwt(string header, string payload)
    {
        static string B64(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var signed = B64(Encoding.UTF8.GetBytes(header)) + "." + B64(Encoding.UTF8.GetBytes(payload));
        return signed + "." + B64(HMACSHA256.HashData(server.BootstrapSecret, Encoding.ASCII.GetBytes(signed)));
    }
}
