using System.Text.Json.Nodes;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Data;
using Connect.Data.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Connect.Api.Users;

/// <summary><c>/__api__/v1/user</c>, <c>/v1/users</c> and the caller's API keys (spec §3.4).</summary>
public static class UserApi
{
    public static RouteGroupBuilder MapUserApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/user", (Delegate)Me).AddEndpointFilter(ApiAuth.RequireUser);
        v1.MapGet("/user/api_keys", ListKeys).AddEndpointFilter(ApiAuth.RequireUnscoped);
        v1.MapDelete("/user/api_keys/{id}", DeleteKey).AddEndpointFilter(ApiAuth.RequireUnscoped);

        var users = v1.MapGroup("/users").AddEndpointFilter(ApiAuth.RequireUnscoped);
        users.MapGet("", List);
        users.MapGet("/{guid}", Get);
        users.MapPost("/{guid}/lock", Lock).AddEndpointFilter(ApiAuth.RequireAdmin);
        return v1;
    }

    private static async Task<IResult> Me(HttpContext context) =>
        TypedResults.Json(UserJson.From(await ApiAuth.UserAsync(context)), ApiJson.Options);

    private static async Task<IResult> ListKeys(HttpContext context, ICatalogStore store, ApiKeyUsage usage)
    {
        var caller = await ApiAuth.UserAsync(context);
        // Last-used times are written in batches; flushing this node's first shows them exact here (others' lag by a flush interval at most).
        await usage.FlushAsync(context.RequestAborted);
        var keys = await store.ListApiKeysAsync(caller.Guid, context.RequestAborted);
        // Keys of running content processes are the server's, not the user's to manage.
        return TypedResults.Json(keys.Where(k => !k.Name.StartsWith(ApiKeys.ProcessKeyPrefix, StringComparison.Ordinal)).Select(k => new JsonObject
        {
            ["id"] = ApiJson.Id(k.Id),
            ["name"] = k.Name,
            ["created_time"] = ApiJson.Time(k.CreatedTime),
            ["last_used_time"] = ApiJson.Time(k.LastUsedTime),
        }).ToArray(), ApiJson.Options);
    }

    private static async Task<IResult> DeleteKey(HttpContext context, ICatalogStore store, ApiKeyCache keys, string id)
    {
        var caller = await ApiAuth.UserAsync(context);
        if (!long.TryParse(id, out var keyId) || !await store.DeleteApiKeyAsync(caller.Guid, keyId, context.RequestAborted))
        {
            return ApiErrors.NotFoundError("API key");
        }
        // The key must stop working on this node now, not when its cache entry expires.
        keys.InvalidateAll();
        return TypedResults.NoContent();
    }

    /// <summary><c>POST /v1/users/{guid}/lock</c> with <c>{"locked": true|false}</c>, as in Posit Connect: a locked user's keys are refused.</summary>
    private static async Task<IResult> Lock(HttpContext context, ICatalogStore store, ApiKeyCache keys, TimeProvider time, string guid)
    {
        var (body, bodyError) = await ApiJson.ReadObjectAsync(context.Request);
        if (bodyError is not null)
        {
            return bodyError;
        }
        if (!body.TryGetProperty("locked", out var field) || field.ValueKind is not (System.Text.Json.JsonValueKind.True or System.Text.Json.JsonValueKind.False))
        {
            return ApiErrors.BadRequestError("The field 'locked' must be true or false.");
        }
        if (!Guid.TryParse(guid, out var userGuid))
        {
            return ApiErrors.NotFoundError("user");
        }
        if (field.GetBoolean() && userGuid == (await ApiAuth.UserAsync(context)).Guid)
        {
            return ApiErrors.BadRequestError("You cannot lock your own account.");
        }
        var user = await store.SetUserLockedAsync(userGuid, field.GetBoolean(), time.GetUtcNow(), context.RequestAborted);
        if (user is null)
        {
            return ApiErrors.NotFoundError("user");
        }
        // A locked user's keys must stop working on this node now, not when their cache entries expire.
        keys.InvalidateAll();
        return TypedResults.Json(UserJson.From(user), ApiJson.Options);
    }

    private static async Task<IResult> List(HttpContext context, ICatalogStore store, int? page_number, int? page_size, string? prefix)
    {
        var page = Math.Max(1, page_number ?? 1);
        var size = Math.Clamp(page_size ?? 20, 1, 500);
        var all = (await store.ListUsersAsync(context.RequestAborted))
            .Where(u => string.IsNullOrEmpty(prefix) || u.Username.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            .ToList();
        return TypedResults.Json(new JsonObject
        {
            ["results"] = new JsonArray(all.Skip((page - 1) * size).Take(size).Select(u => (JsonNode)UserJson.From(u)).ToArray()),
            ["current_page"] = page,
            ["total"] = all.Count,
        }, ApiJson.Options);
    }

    private static async Task<IResult> Get(HttpContext context, ICatalogStore store, string guid)
    {
        var user = Guid.TryParse(guid, out var g) ? await store.GetUserAsync(g, context.RequestAborted) : null;
        return user is null ? ApiErrors.NotFoundError("user") : TypedResults.Json(UserJson.From(user), ApiJson.Options);
    }
}
