using Connect.Core.Hosting;
using Microsoft.AspNetCore.Http;

namespace Connect.Api.Http;

/// <summary>Builds the absolute URLs Connect returns (content_url, dashboard_url).</summary>
public static class PublicUrls
{
    public static string Base(HttpContext context)
    {
        var configured = context.RequestServices.GetService(typeof(ServerUrl)) is ServerUrl { Configured: { } c } ? c : null;
        return configured ?? $"{context.Request.Scheme}://{context.Request.Host}{context.Request.PathBase}".TrimEnd('/');
    }

    public static string Content(string baseUrl, Guid guid) => $"{baseUrl}/content/{guid:D}/";

    public static string Dashboard(string baseUrl, Guid guid) => $"{baseUrl}/connect/#/apps/{guid:D}";
}
