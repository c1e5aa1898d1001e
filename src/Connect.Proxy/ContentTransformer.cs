using System.Globalization;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace Connect.Proxy;

/// <summary>
/// Rewrites a viewer's request for the content process: the <c>/content/{guid}</c> prefix is stripped (apps run
/// as if mounted at /, and learn their public root from SCRIPT_NAME/root_path and the headers below), Connect's
/// own credentials are removed, and the forwarding headers are set. For a process on another node the request
/// goes to that node's internal route with the hop's headers, and that node's refusal is caught, not passed on.
/// </summary>
internal sealed class ContentTransformer(string remainderPath, string publicBase, string? pinCookie = null) : HttpTransformer
{
    /// <summary>Set when the request goes over the internal hop to another node.</summary>
    public InternalHop? Hop { get; init; }

    /// <summary>The other node's refusal (saturated, gone), when it refused.</summary>
    public string? HopRefusal { get; private set; }

    public override async ValueTask TransformRequestAsync(HttpContext context, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(context, proxyRequest, destinationPrefix, cancellationToken);
        var request = context.Request;
        proxyRequest.RequestUri = new Uri(destinationPrefix + remainderPath + request.QueryString.Value);

        var headers = proxyRequest.Headers;
        // A viewer's Connect API key is for Connect, not for the content it happens to open.
        if (request.Headers.Authorization.ToString().StartsWith("Key ", StringComparison.OrdinalIgnoreCase))
        {
            headers.Remove("Authorization");
        }
        headers.Remove("X-RSC-Authorization");
        // Whatever a viewer sends in the hop's headers is dropped; only this node's own are set below.
        foreach (var header in InternalRoutes.All)
        {
            headers.Remove(header);
        }

        var remote = context.Connection.RemoteIpAddress?.ToString();
        var priorFor = request.Headers["X-Forwarded-For"].ToString();
        headers.Remove("X-Forwarded-For");
        if (remote is not null)
        {
            headers.TryAddWithoutValidation("X-Forwarded-For", string.IsNullOrEmpty(priorFor) ? remote : priorFor + ", " + remote);
        }
        Replace(headers, "X-Forwarded-Proto", request.Scheme);
        Replace(headers, "X-Forwarded-Host", request.Host.Value ?? "");
        Replace(headers, "RStudio-Connect-App-Base-URL", publicBase);
        Replace(headers, "X-RSC-Request", $"{request.Scheme}://{request.Host}{request.PathBase}{request.Path}{request.QueryString}");
        // Keep the viewer's Host: frameworks build absolute URLs from it together with the root path.
        proxyRequest.Headers.Host = request.Host.Value;
        if (Hop is { } hop)
        {
            headers.TryAddWithoutValidation(InternalRoutes.TokenHeader, hop.Token);
            headers.TryAddWithoutValidation(InternalRoutes.LimitHeader, hop.Limit.ToString(CultureInfo.InvariantCulture));
            headers.TryAddWithoutValidation(InternalRoutes.TimeoutHeader, hop.Timeout.TotalSeconds.ToString(CultureInfo.InvariantCulture));
        }
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        if (Hop is not null && proxyResponse is not null && proxyResponse.Headers.TryGetValues(InternalRoutes.RefusalHeader, out var refusal))
        {
            // Not for the viewer: the caller tries another process.
            HopRefusal = refusal.FirstOrDefault() ?? InternalRoutes.Gone;
            return false;
        }
        var proceed = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        if (pinCookie is not null && proxyResponse is not null)
        {
            httpContext.Response.Headers.Append("Set-Cookie", pinCookie);
        }
        return proceed;
    }

    private static void Replace(System.Net.Http.Headers.HttpRequestHeaders headers, string name, string value)
    {
        headers.Remove(name);
        headers.TryAddWithoutValidation(name, value);
    }
}
