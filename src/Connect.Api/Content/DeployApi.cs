using System.Globalization;
using System.Text.Json;
using Connect.Abstractions;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Data;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Connect.Api.Content;

/// <summary><c>POST /__api__/v1/content/{guid}/deploy</c> (spec §3.2): queues a deployment task.</summary>
public static class DeployApi
{
    public static RouteGroupBuilder MapDeployApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/content/{guid}/deploy", Deploy).AddEndpointFilter(ApiAuth.RequireUser);
        return v1;
    }

    private static async Task<IResult> Deploy(HttpContext context, ICatalogStore store, IGrainFactory grains, string guid)
    {
        var (item, caller, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        var (body, bodyError) = await ApiJson.ReadObjectAsync(context.Request, allowEmpty: true);
        if (bodyError is not null)
        {
            return bodyError;
        }
        if (body.TryGetProperty("activate", out var activate) && activate.ValueKind == JsonValueKind.False)
        {
            return ApiErrors.BadRequestError("Draft deployments (activate: false) are not supported by this server version.");
        }
        long? bundleId = null;
        if (body.TryGetProperty("bundle_id", out var b))
        {
            switch (b.ValueKind)
            {
                case JsonValueKind.Null:
                    break;
                case JsonValueKind.String when long.TryParse(b.GetString(), NumberStyles.None, CultureInfo.InvariantCulture, out var s):
                    bundleId = s;
                    break;
                case JsonValueKind.Number when b.TryGetInt64(out var n):
                    bundleId = n;
                    break;
                default:
                    return ApiErrors.Error(StatusCodes.Status400BadRequest, ApiErrors.InvalidId, "bundle_id must be a bundle id or null.");
            }
        }
        // No bundle named: redeploy the active bundle, or else the newest upload.
        bundleId ??= item!.BundleId ?? (await store.ListBundlesAsync(item.Guid, context.RequestAborted)).MaxBy(x => x.Id)?.Id;
        if (bundleId is null || await store.GetBundleAsync(item!.Guid, bundleId.Value, context.RequestAborted) is null)
        {
            return ApiErrors.NotFoundError("bundle");
        }
        try
        {
            var taskId = await grains.GetGrain<IContentGrain>(item.Guid).DeployAsync(bundleId.Value, caller.Guid);
            return TypedResults.Json(new { task_id = taskId }, ApiJson.Options, statusCode: StatusCodes.Status202Accepted);
        }
        catch (ContentNotFoundException)
        {
            return ApiErrors.NotFoundError("content");
        }
    }
}
