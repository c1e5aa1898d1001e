using Connect.Data.Security;
using Microsoft.AspNetCore.Http;

namespace Connect.Proxy;

/// <summary>
/// Pins a browser session of an interactive app (Shiny, Streamlit, Dash…) to the process that holds its state: the
/// front end issues a cookie naming the process, signed with the cluster secret so it cannot be forged or moved to
/// another item, and every node honours it. API content is never pinned.
/// </summary>
public static class SessionPins
{
    private const string Purpose = "session-pin";

    public static string CookieName(Guid content) => "connect_session_" + content.ToString("N")[..12];

    /// <summary>The pinned process of this item, or null when the request has no valid pin.</summary>
    public static Guid? Read(HttpContext context, ClusterSecret secret, Guid content)
    {
        var value = secret.Verify(Purpose, context.Request.Cookies[CookieName(content)]);
        if (value is null)
        {
            return null;
        }
        var parts = value.Split('~');
        return parts.Length == 2 && Guid.TryParseExact(parts[0], "N", out var item) && item == content && Guid.TryParseExact(parts[1], "N", out var process)
            ? process
            : null;
    }

    /// <summary>The Set-Cookie header value pinning this session to <paramref name="process"/>.</summary>
    public static string Issue(ClusterSecret secret, Guid content, Guid process)
    {
        var value = secret.Sign(Purpose, $"{content:N}~{process:N}");
        // Session cookie, the item's path only, never readable by the app's scripts.
        return $"{CookieName(content)}={value}; Path=/content/{content:D}/; HttpOnly; SameSite=Lax";
    }

    /// <summary>Removes the pin (its process is gone): the next request starts a new session.</summary>
    public static void Clear(HttpContext context, Guid content) =>
        context.Response.Headers.Append("Set-Cookie", $"{CookieName(content)}=; Path=/content/{content:D}/; Max-Age=0; HttpOnly; SameSite=Lax");
}
