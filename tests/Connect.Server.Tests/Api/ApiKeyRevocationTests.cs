using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Api;

/// <summary>
/// Validated keys are cached per node (Connect:ApiKeyCacheSeconds), but what revokes a key on this node takes
/// effect on its very next request (README, API keys).
/// </summary>
public sealed class ApiKeyRevocationTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    private static async Task AssertInvalidKeyAsync(HttpResponseMessage response)
    {
        var text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Unauthorized, $"{(int)response.StatusCode} {text}");
        Assert.Equal(30, JsonNode.Parse(text)!["code"]!.GetValue<int>());
    }

    [Fact]
    public async Task A_deleted_key_is_refused_on_its_next_request()
    {
        using var dana = server.NewClient(await server.CreateUserWithKeyAsync("dana", "publisher"));
        // Twice, so that the key is certainly in the node's cache.
        Assert.Equal("dana", (await dana.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!["username"]!.GetValue<string>());
        Assert.Equal("dana", (await dana.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!["username"]!.GetValue<string>());
        var key = Assert.Single((await dana.GetFromJsonAsync<JsonArray>("__api__/v1/user/api_keys"))!)!;
        // Last use is written in batches, but the list flushes this node's first.
        Assert.NotNull(key["last_used_time"]?.GetValue<string>());

        using (var deleted = await dana.DeleteAsync($"__api__/v1/user/api_keys/{key["id"]}"))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var refused = await dana.GetAsync("__api__/v1/user");
        await AssertInvalidKeyAsync(refused);
    }

    [Fact]
    public async Task A_locked_users_key_is_refused_on_its_next_request_and_works_again_once_unlocked()
    {
        using var erin = server.NewClient(await server.CreateUserWithKeyAsync("erin", "publisher"));
        var me = (await erin.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!;
        Assert.False(me["locked"]!.GetValue<bool>());
        var guid = me["guid"]!.GetValue<string>();

        using (var locked = await server.Admin.PostAsJsonAsync($"__api__/v1/users/{guid}/lock", new JsonObject { ["locked"] = true }))
        {
            Assert.Equal(HttpStatusCode.OK, locked.StatusCode);
            Assert.True((await locked.Content.ReadFromJsonAsync<JsonObject>())!["locked"]!.GetValue<bool>());
        }
        using (var refused = await erin.GetAsync("__api__/v1/user"))
        {
            await AssertInvalidKeyAsync(refused);
        }
        // Locked users may not lock others (nor do anything else).
        using (var denied = await erin.PostAsJsonAsync($"__api__/v1/users/{guid}/lock", new JsonObject { ["locked"] = false }))
        {
            await AssertInvalidKeyAsync(denied);
        }

        using (var unlocked = await server.Admin.PostAsJsonAsync($"__api__/v1/users/{guid}/lock", new JsonObject { ["locked"] = false }))
        {
            Assert.Equal(HttpStatusCode.OK, unlocked.StatusCode);
        }
        Assert.False((await erin.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!["locked"]!.GetValue<bool>());
    }

    [Fact]
    public async Task Only_administrators_lock_users_and_never_themselves()
    {
        using var fay = server.NewClient(await server.CreateUserWithKeyAsync("fay", "publisher"));
        var admin = (await server.Admin.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!["guid"]!.GetValue<string>();

        using (var forbidden = await fay.PostAsJsonAsync($"__api__/v1/users/{admin}/lock", new JsonObject { ["locked"] = true }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        }
        using (var self = await server.Admin.PostAsJsonAsync($"__api__/v1/users/{admin}/lock", new JsonObject { ["locked"] = true }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, self.StatusCode);
        }
        using (var unknown = await server.Admin.PostAsJsonAsync($"__api__/v1/users/{Guid.NewGuid()}/lock", new JsonObject { ["locked"] = true }))
        {
            Assert.Equal(HttpStatusCode.NotFound, unknown.StatusCode);
        }
        using var stillAdmin = await server.Admin.GetAsync("__api__/v1/user");
        Assert.Equal(HttpStatusCode.OK, stillAdmin.StatusCode);
    }
}
