using Connect.Api.Http;
using Connect.Data.Security;
using Connect.Core.Content;
using Connect.Core.Model;
using Microsoft.AspNetCore.Http;

namespace Connect.Api.Auth;

/// <summary>Endpoint filters for the publisher API: an authenticated caller, and one allowed to publish.</summary>
public static class ApiAuth
{
    public static async ValueTask<object?> RequireUser(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = await Caller.GetAsync(context.HttpContext);
        if (caller.InvalidKey)
        {
            return ApiErrors.InvalidKey();
        }
        if (caller.User is null)
        {
            return ApiErrors.Unauthorized();
        }
        return await next(context);
    }

    public static async ValueTask<object?> RequirePublisher(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = await Caller.GetAsync(context.HttpContext);
        if (caller.User is { } user && !user.CanPublish)
        {
            return ApiErrors.Forbidden("Only publishers and administrators may do this.");
        }
        return await RequireUser(context, next);
    }

    public static async ValueTask<object?> RequireAdmin(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = await Caller.GetAsync(context.HttpContext);
        if (caller.User is { } user && !user.IsAdmin)
        {
            return ApiErrors.Forbidden("Only administrators may do this.");
        }
        return await RequireUser(context, next);
    }

    /// <summary>
    /// For what reaches beyond one content item (creating content, users, keys): a key scoped to an item is refused,
    /// so that a key stolen from a content process cannot grow into more (rule in <see cref="ContentAccess"/>).
    /// </summary>
    public static async ValueTask<object?> RequireUnscoped(EndpointFilterInvocationContext context, EndpointFilterDelegate next) =>
        await RefuseScoped(context, ctx => RequireUser(ctx, next));

    /// <summary>As <see cref="RequireUnscoped"/>, for endpoints that do not otherwise need a user (bootstrap).</summary>
    public static async ValueTask<object?> RefuseScoped(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        var caller = await Caller.GetAsync(context.HttpContext);
        if (caller.User is not null && !ContentAccess.CanActServerWide(caller.ScopedContent))
        {
            return ApiErrors.Forbidden(ScopedKeyMessage);
        }
        return await next(context);
    }

    public const string ScopedKeyMessage = "This API key belongs to one content item's process: it may only be used for that item.";

    /// <summary>The caller of a request that passed <see cref="RequireUser"/>.</summary>
    public static async ValueTask<UserInfo> UserAsync(HttpContext context) =>
        (await Caller.GetAsync(context)).User ?? throw new InvalidOperationException("endpoint is missing its RequireUser filter");
}
