using Connect.Core.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Connect.Api.Http;

/// <summary>
/// Bad input to <c>/__api__</c> answers in Connect's error shape, whatever part of ASP.NET Core noticed it: parameter
/// binding (<c>?wait=abc</c>), Kestrel's body limits, or any handler that set an error status without a body. Clients
/// only report errors they can parse, and a publisher's typo must never read as a server fault (500).
/// </summary>
public static partial class ApiBadInput
{
    /// <summary>
    /// Caps API request bodies at <c>Connect:MaxJsonBodyBytes</c> (bundle uploads lift the cap for themselves) and
    /// turns <see cref="BadHttpRequestException"/> and empty error responses into JSON errors. Register it after
    /// <c>UseConnectApiErrors</c>, so that these never reach the 500 handler.
    /// </summary>
    public static IApplicationBuilder UseConnectApiBadInput(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        if (!context.Request.Path.StartsWithSegments("/__api__"))
        {
            await next(context);
            return;
        }
        var max = context.RequestServices.GetRequiredService<IOptions<ConnectOptions>>().Value.MaxJsonBodyBytes;
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = max;
        }
        try
        {
            await next(context);
        }
        catch (BadHttpRequestException e) when (!context.Response.HasStarted)
        {
            Log(context).LogBadRequest(context.Request.Method, context.Request.Path, e.StatusCode, e.Message);
            context.Response.Clear();
            var message = e.StatusCode == StatusCodes.Status413PayloadTooLarge
                ? $"The request body is larger than this server's limit of {max} bytes for JSON requests."
                : "The request is not valid: " + e.Message;
            await ApiErrors.Error(e.StatusCode, CodeFor(e.StatusCode), message).ExecuteAsync(context);
            return;
        }
        if (!context.Response.HasStarted && context.Response.StatusCode >= 400
            && context.Response.ContentLength is null && string.IsNullOrEmpty(context.Response.ContentType))
        {
            var status = context.Response.StatusCode;
            await ApiErrors.Error(status, CodeFor(status), DefaultMessage(status)).ExecuteAsync(context);
        }
    });

    private static int CodeFor(int status) => status switch
    {
        StatusCodes.Status401Unauthorized => ApiErrors.Unauthenticated,
        StatusCodes.Status403Forbidden => ApiErrors.NotPermitted,
        StatusCodes.Status404NotFound => ApiErrors.NotFound,
        StatusCodes.Status405MethodNotAllowed => ApiErrors.UnknownEndpoint,
        >= 500 => ApiErrors.Internal,
        _ => ApiErrors.BadRequest,
    };

    private static string DefaultMessage(int status) => status switch
    {
        StatusCodes.Status400BadRequest => "The request is not valid.",
        StatusCodes.Status401Unauthorized => "This request needs an API key (Authorization: Key <key>).",
        StatusCodes.Status403Forbidden => "You do not have permission to perform this operation.",
        StatusCodes.Status404NotFound => "The requested object does not exist.",
        StatusCodes.Status405MethodNotAllowed => "This endpoint does not support the request method.",
        StatusCodes.Status413PayloadTooLarge => "The request body is too large.",
        StatusCodes.Status415UnsupportedMediaType => "The request body has an unsupported content type.",
        >= 500 => "An internal error occurred; see the server log.",
        _ => "The request could not be processed.",
    };

    private static ILogger Log(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger(typeof(ApiBadInput).FullName!);

    [LoggerMessage(Level = LogLevel.Information, Message = "Rejected {Method} {Path} with {Status}: {Reason}")]
    private static partial void LogBadRequest(this ILogger logger, string method, PathString path, int status, string reason);
}
