using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Connect.Proxy;

/// <summary>The HTML a viewer sees when content cannot be shown; its owner also sees the process log.</summary>
internal static class ErrorPages
{
    public static IResult Render(int status, string title, string message, IReadOnlyList<string>? logTail = null)
    {
        var html = new StringBuilder();
        html.Append("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>")
            .Append(WebUtility.HtmlEncode(title))
            .Append("</title><style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:3rem auto;padding:0 1rem;color:#222}")
            .Append("pre{background:#f4f4f4;padding:1rem;overflow:auto;font-size:.85rem}</style></head><body><h1>")
            .Append(WebUtility.HtmlEncode(title)).Append("</h1><p>").Append(WebUtility.HtmlEncode(message)).Append("</p>");
        if (logTail is { Count: > 0 })
        {
            html.Append("<h2>Application log (shown to the content's owner)</h2><pre>");
            foreach (var line in logTail)
            {
                html.Append(WebUtility.HtmlEncode(line)).Append('\n');
            }
            html.Append("</pre>");
        }
        html.Append("</body></html>");
        return TypedResults.Content(html.ToString(), "text/html; charset=utf-8", Encoding.UTF8, status);
    }
}
