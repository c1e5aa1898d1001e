using Connect.Api.Auth;
using Connect.Data.Security;
using Connect.Api.Content;
using Connect.Api.Http;
using Connect.Api.Server;
using Connect.Api.Tasks;
using Connect.Api.Users;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Connect.Api;

public static class ConnectApi
{
    /// <summary>
    /// Unhandled failures under <c>/__api__</c> answer in Connect's error shape (code 1) rather than an empty 500,
    /// since clients only report errors they can parse. Details stay in the server log.
    /// </summary>
    public static IApplicationBuilder UseConnectApiErrors(this IApplicationBuilder app) =>
        app.UseExceptionHandler(new ExceptionHandlerOptions
        {
            ExceptionHandler = async context =>
            {
                if (context.Request.Path.StartsWithSegments("/__api__"))
                {
                    await ApiErrors.Error(StatusCodes.Status500InternalServerError, ApiErrors.Internal, "An internal error occurred; see the server log.").ExecuteAsync(context);
                }
            },
        });

    /// <summary>Maps the whole publisher API under <c>/__api__</c>.</summary>
    public static IEndpointRouteBuilder MapConnectApi(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/__api__");
        // A presented key that is not valid fails every API call, as in Connect, rather than silently acting anonymous.
        api.AddEndpointFilter(async (context, next) =>
            (await Caller.GetAsync(context.HttpContext)).InvalidKey ? ApiErrors.InvalidKey() : await next(context));
        api.MapServerSettingsApi();
        api.MapLegacyApplicationsApi();
        var v1 = api.MapGroup("/v1");
        v1.MapUserApi()
          .MapBootstrapApi()
          .MapContentApi()
          .MapBundleApi()
          .MapDeployApi()
          .MapEnvironmentApi()
          .MapJobApi()
          .MapTaskApi();
        api.Map("/{**rest}", (string? rest) =>
            ApiErrors.Error(StatusCodes.Status404NotFound, ApiErrors.UnknownEndpoint, $"The endpoint /__api__/{rest} is not supported."));
        return app;
    }
}
