using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace Connect.Proxy;

/// <summary>
/// Rewrites a viewer's request for the content process: the <c>/content/{guid}</c> prefix is stripped (apps run
/// as if mounted at /, and learn their public root from SCRIPT_NAME/root_path and the headers below), Connect's
/// own credentials are removed, and the forwarding headers are set.
/// </summary>
internal sealed class ContentTransformer(string remainderPath, string publicBase) : HttpTransformer
{
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
    }

    private static void Replace(System.Net.Http.Headers.HttpRequestHeaders headers, string name, string value)
    {
        headers.Remove(name);
        headers.TryAddWithoutValidation(name, value);
    }
}
