using System.Text.Json;
using System.Text.RegularExpressions;
using Connect.Abstractions;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Data;
using Connect.Data.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Connect.Api.Content;

/// <summary>
/// <c>/__api__/v1/content/{guid}/environment</c> (spec §3.3): names only go out; values are sealed before they
/// reach the catalog and are never returned. A change restarts the item's processes so they see it.
/// </summary>
public static partial class EnvironmentApi
{
    public static RouteGroupBuilder MapEnvironmentApi(this RouteGroupBuilder v1)
    {
        var env = v1.MapGroup("/content/{guid}/environment").AddEndpointFilter(ApiAuth.RequireUser);
        env.MapGet("", Get);
        env.MapPatch("", (HttpContext c, ICatalogStore s, SecretBox b, IGrainFactory g, string guid) => Update(c, s, b, g, guid, replaceAll: false));
        env.MapPut("", (HttpContext c, ICatalogStore s, SecretBox b, IGrainFactory g, string guid) => Update(c, s, b, g, guid, replaceAll: true));
        return v1;
    }

    [GeneratedRegex("^[A-Za-z_][A-Za-z0-9_]*$")]
    private static partial Regex NamePattern();

    private static async Task<IResult> Get(HttpContext context, ICatalogStore store, string guid)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        return error ?? TypedResults.Json(await store.GetEnvironmentNamesAsync(item!.Guid, context.RequestAborted), ApiJson.Options);
    }

    private static async Task<IResult> Update(HttpContext context, ICatalogStore store, SecretBox secrets, IGrainFactory grains, string guid, bool replaceAll)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        var (doc, bodyError) = await ApiJson.ReadDocumentAsync(context.Request);
        if (doc is null)
        {
            return bodyError!;
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
            {
                return ApiErrors.BadRequestError("The body must be an array of {\"name\": …, \"value\": …} objects.");
            }
            var changes = new List<KeyValuePair<string, byte[]?>>();
            foreach (var entry in doc.RootElement.EnumerateArray())
            {
                if (entry.ValueKind != JsonValueKind.Object || !entry.TryGetProperty("name", out var n) || n.ValueKind != JsonValueKind.String)
                {
                    return ApiErrors.BadRequestError("Each entry needs a string \"name\".");
                }
                var name = n.GetString()!;
                if (!NamePattern().IsMatch(name))
                {
                    return ApiErrors.BadRequestError($"'{name}' is not a valid environment variable name.");
                }
                if (name.StartsWith("CONNECT_", StringComparison.Ordinal) || name is "POSIT_PRODUCT" or "RSTUDIO_PRODUCT")
                {
                    return ApiErrors.BadRequestError($"'{name}' is reserved: Connect sets it for every process.");
                }
                entry.TryGetProperty("value", out var v);
                byte[]? sealedValue = v.ValueKind switch
                {
                    JsonValueKind.String => secrets.Seal(v.GetString()!),
                    JsonValueKind.Null or JsonValueKind.Undefined => null,
                    _ => [],
                };
                if (sealedValue is { Length: 0 })
                {
                    return ApiErrors.BadRequestError($"The value of '{name}' must be a string or null.");
                }
                changes.Add(new(name, sealedValue));
            }
            var names = await store.UpdateEnvironmentAsync(item!.Guid, changes, replaceAll, context.RequestAborted);
            await grains.GetGrain<IContentGrain>(item.Guid).RestartAsync();
            return TypedResults.Json(names, ApiJson.Options);
        }
    }
}
