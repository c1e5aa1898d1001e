using System.Text.Json;
using Connect.Abstractions;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Core.Content;
using Connect.Core.Model;
using Connect.Data;
using Connect.Data.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Connect.Api.Content;

/// <summary><c>/__api__/v1/content</c>: list, get, create, patch, delete (spec §3.1).</summary>
public static class ContentApi
{
    public static RouteGroupBuilder MapContentApi(this RouteGroupBuilder v1)
    {
        var content = v1.MapGroup("/content").AddEndpointFilter(ApiAuth.RequireUser);
        content.MapGet("", List);
        content.MapGet("/{guid}", Get);
        content.MapPost("", Create).AddEndpointFilter(ApiAuth.RequirePublisher).AddEndpointFilter(ApiAuth.RequireUnscoped);
        content.MapPatch("/{guid}", Patch);
        content.MapDelete("/{guid}", Delete);
        return v1;
    }

    /// <summary>
    /// <c>GET /__api__/applications/{id}</c>: the legacy lookup rsconnect makes for a numeric <c>--app-id</c>; it reads
    /// only <c>guid</c>, then continues with v1. A GUID is accepted too, as Connect does.
    /// </summary>
    public static RouteGroupBuilder MapLegacyApplicationsApi(this RouteGroupBuilder api)
    {
        api.MapGet("/applications/{id}", Legacy).AddEndpointFilter(ApiAuth.RequireUser);
        return api;
    }

    private static async Task<IResult> Legacy(HttpContext context, ICatalogStore store, string id)
    {
        if (long.TryParse(id, out var numeric))
        {
            var found = await store.GetContentByIdAsync(numeric, context.RequestAborted);
            id = found?.Guid.ToString("D") ?? Guid.Empty.ToString("D");
        }
        var (item, caller, error) = await ContentLookup.LoadAsync(context, store, id, edit: false);
        return error ?? TypedResults.Json(ContentJson.From(item!, caller, PublicUrls.Base(context)), ApiJson.Options);
    }

    private static async Task<IResult> List(HttpContext context, ICatalogStore store, string? name, string? owner_guid, string? include)
    {
        var caller = await ApiAuth.UserAsync(context);
        var scope = (await Caller.GetAsync(context)).ScopedContent;
        Guid? owner = null;
        if (!string.IsNullOrEmpty(owner_guid))
        {
            if (!Guid.TryParse(owner_guid, out var g))
            {
                return ApiErrors.Error(StatusCodes.Status400BadRequest, ApiErrors.InvalidId, "owner_guid must be a GUID.");
            }
            owner = g;
        }
        var items = await store.ListContentAsync(new ContentQuery(string.IsNullOrEmpty(name) ? null : name, owner), context.RequestAborted);
        var includes = ContentJson.ParseInclude(include);
        var baseUrl = PublicUrls.Base(context);
        var owners = new Dictionary<Guid, UserInfo?>();
        var result = new System.Text.Json.Nodes.JsonArray();
        foreach (var item in items.Where(i => ContentAccess.InScope(scope, i.Guid) && ContentAccess.CanView(i, caller)))
        {
            UserInfo? ownerInfo = null;
            if (includes.Contains("owner") && !owners.TryGetValue(item.Settings.OwnerGuid, out ownerInfo))
            {
                ownerInfo = owners[item.Settings.OwnerGuid] = await store.GetUserAsync(item.Settings.OwnerGuid, context.RequestAborted);
            }
            result.Add(ContentJson.From(item, caller, baseUrl, ownerInfo, includes));
        }
        return TypedResults.Json(result, ApiJson.Options);
    }

    private static async Task<IResult> Get(HttpContext context, ICatalogStore store, IGrainFactory grains, string guid, string? include)
    {
        var (item, caller, error) = await ContentLookup.LoadAsync(context, store, guid, edit: false);
        if (error is not null)
        {
            return error;
        }
        var includes = ContentJson.ParseInclude(include);
        var owner = includes.Contains("owner") ? await store.GetUserAsync(item!.Settings.OwnerGuid, context.RequestAborted) : null;
        var crashLoop = await grains.GetGrain<IContentGrain>(item!.Guid).GetCrashLoopAsync();
        return TypedResults.Json(ContentJson.WithCrashLoop(ContentJson.From(item, caller, PublicUrls.Base(context), owner, includes), crashLoop), ApiJson.Options);
    }

    private static async Task<IResult> Create(HttpContext context, ICatalogStore store, IOptions<SchedulerDefaults> scheduler, TimeProvider time)
    {
        var caller = await ApiAuth.UserAsync(context);
        var (body, bodyError) = await ApiJson.ReadObjectAsync(context.Request);
        if (bodyError is not null)
        {
            return bodyError;
        }
        if (!body.TryGetProperty("name", out var nameField))
        {
            return ApiErrors.BadRequestError("The content name is required.");
        }
        // An empty name asks the server to choose one (Posit Publisher never picks names): from the title when it
        // has one, else a random one; a clash is retried with a random suffix rather than reported.
        var chooseName = nameField.ValueKind == JsonValueKind.String && nameField.GetString()!.Length == 0;
        var fromTitle = chooseName && body.TryGetProperty("title", out var titleField) && titleField.ValueKind == JsonValueKind.String
            ? ContentNames.FromTitle(titleField.GetString())
            : null;
        var blank = new ContentSettings { Name = chooseName ? fromTitle ?? ContentNames.Generate() : "", OwnerGuid = caller.Guid };
        var (settings, problem, code) = ContentJson.Apply(blank, body, caller.IsAdmin, scheduler.Value);
        if (settings is null)
        {
            return ApiErrors.Error(code == ApiErrors.NotPermitted ? 403 : 400, code, problem!);
        }
        if (settings.OwnerGuid != caller.Guid && await store.GetUserAsync(settings.OwnerGuid, context.RequestAborted) is null)
        {
            return ApiErrors.BadRequestError("owner_guid names no user.");
        }
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                var item = await store.CreateContentAsync(settings, time.GetUtcNow(), context.RequestAborted);
                return TypedResults.Json(ContentJson.From(item, caller, PublicUrls.Base(context)), ApiJson.Options);
            }
            catch (CatalogConflictException) when (chooseName && attempt < MaxNameAttempts)
            {
                settings = settings with { Name = ContentNames.WithRandomSuffix(fromTitle ?? "content") };
            }
            catch (CatalogConflictException e)
            {
                return ApiErrors.Error(StatusCodes.Status409Conflict, ApiErrors.Conflict, char.ToUpperInvariant(e.Message[0]) + e.Message[1..] + ".");
            }
        }
    }

    /// <summary>Tries at a server-chosen name: one clash is expected (same title twice); more than a few means something else is wrong.</summary>
    private const int MaxNameAttempts = 5;

    private static async Task<IResult> Patch(HttpContext context, ICatalogStore store, IGrainFactory grains, IOptions<SchedulerDefaults> scheduler, string guid)
    {
        var (item, caller, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        var (body, bodyError) = await ApiJson.ReadObjectAsync(context.Request);
        if (bodyError is not null)
        {
            return bodyError;
        }
        var (settings, problem, code) = ContentJson.Apply(item!.Settings, body, caller.IsAdmin, scheduler.Value);
        if (settings is null)
        {
            return ApiErrors.Error(code == ApiErrors.NotPermitted ? 403 : 400, code, problem!);
        }
        if (settings.OwnerGuid != item.Settings.OwnerGuid && await store.GetUserAsync(settings.OwnerGuid, context.RequestAborted) is null)
        {
            return ApiErrors.BadRequestError("owner_guid names no user.");
        }
        try
        {
            var content = grains.GetGrain<IContentGrain>(item.Guid);
            var updated = await content.UpdateSettingsAsync(settings, item.RowVersion);
            return TypedResults.Json(ContentJson.WithCrashLoop(ContentJson.From(updated, caller, PublicUrls.Base(context)), await content.GetCrashLoopAsync()), ApiJson.Options);
        }
        catch (ContentConflictException e)
        {
            return ApiErrors.Error(StatusCodes.Status409Conflict, ApiErrors.Conflict, e.Message);
        }
        catch (ContentNotFoundException)
        {
            return ApiErrors.NotFoundError("content");
        }
    }

    private static async Task<IResult> Delete(HttpContext context, ICatalogStore store, IGrainFactory grains, string guid)
    {
        var (item, caller, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        if (!ContentAccess.CanDelete(item!, caller, (await Caller.GetAsync(context)).ScopedContent))
        {
            return ApiErrors.Forbidden("This API key belongs to the content's own process: it may not delete the content.");
        }
        try
        {
            await grains.GetGrain<IContentGrain>(item!.Guid).DeleteAsync();
        }
        catch (ContentNotFoundException)
        {
            return ApiErrors.NotFoundError("content");
        }
        return TypedResults.NoContent();
    }
}
