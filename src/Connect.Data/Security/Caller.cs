using Connect.Core.Content;
using Connect.Core.Model;
using Connect.Data;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Connect.Data.Security;

/// <summary>Who is calling: resolved once per request from <c>Authorization: Key …</c>.</summary>
public sealed class Caller
{
    private static readonly object ItemKey = new();

    public UserInfo? User { get; private init; }

    /// <summary>
    /// The content item the presented key is confined to (a content process's CONNECT_API_KEY), or null for a key
    /// that acts as its user everywhere. What a scoped key may do is decided in <see cref="ContentAccess"/>.
    /// </summary>
    public Guid? ScopedContent { get; private init; }

    /// <summary>The user this request acts as towards <paramref name="item"/>: nobody, when the key is scoped to another item.</summary>
    public UserInfo? UserFor(ContentItem item) => ContentAccess.ActingUser(item, User, ScopedContent);

    /// <summary>A key was presented but matches no (unlocked) user.</summary>
    public bool InvalidKey { get; private init; }

    public static async ValueTask<Caller> GetAsync(HttpContext context)
    {
        if (context.Items.TryGetValue(ItemKey, out var cached) && cached is Caller c)
        {
            return c;
        }
        var caller = await ResolveAsync(context);
        context.Items[ItemKey] = caller;
        return caller;
    }

    private static async Task<Caller> ResolveAsync(HttpContext context)
    {
        var key = ReadKey(context.Request);
        if (key is null)
        {
            return new Caller();
        }
        var hash = ApiKeys.Hash(key);
        var holder = await context.RequestServices.GetRequiredService<ApiKeyCache>().FindAsync(hash, context.RequestAborted);
        if (holder is null || holder.User.Locked)
        {
            return new Caller { InvalidKey = true };
        }
        context.RequestServices.GetRequiredService<ApiKeyUsage>().Record(hash);
        return new Caller { User = holder.User, ScopedContent = holder.ContentScope };
    }

    /// <summary>The API key of the request, from <c>Authorization: Key k</c> (or <c>X-RSC-Authorization</c>, sent behind proxies that own Authorization).</summary>
    public static string? ReadKey(HttpRequest request)
    {
        foreach (var header in new[] { "Authorization", "X-RSC-Authorization" })
        {
            var value = request.Headers[header].ToString();
            if (value.StartsWith("Key ", StringComparison.OrdinalIgnoreCase))
            {
                var key = value[4..].Trim();
                return key.Length > 0 ? key : null;
            }
        }
        return null;
    }
}
