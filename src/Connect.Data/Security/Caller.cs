using Connect.Core.Model;
using Connect.Data;
using Microsoft.AspNetCore.Http;

namespace Connect.Data.Security;

/// <summary>Who is calling: resolved once per request from <c>Authorization: Key …</c>.</summary>
public sealed class Caller
{
    private static readonly object ItemKey = new();

    public UserInfo? User { get; private init; }

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
        var store = (ICatalogStore)context.RequestServices.GetService(typeof(ICatalogStore))!;
        var time = (TimeProvider)context.RequestServices.GetService(typeof(TimeProvider))!;
        var user = await store.FindUserByKeyHashAsync(ApiKeys.Hash(key), time.GetUtcNow(), context.RequestAborted);
        return user is null || user.Locked ? new Caller { InvalidKey = true } : new Caller { User = user };
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
