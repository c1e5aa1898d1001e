using Connect.Api.Http;
using Connect.Data.Security;
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

    /// <summary>The caller of a request that passed <see cref="RequireUser"/>.</summary>
    public static async ValueTask<UserInfo> UserAsync(HttpContext context) =>
        (await Caller.GetAsync(context)).User ?? throw new InvalidOperationException("endpoint is missing its RequireUser filter");
}
