using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Core.Content;
using Connect.Core.Model;
using Connect.Data;
using Connect.Data.Security;
using Microsoft.AspNetCore.Http;

namespace Connect.Api.Content;

internal static class ContentLookup
{
    /// <summary>Loads an item the caller may see (or edit); otherwise the error to return. Items the caller may not see are reported as missing.</summary>
    public static async Task<(ContentItem? Item, UserInfo Caller, IResult? Error)> LoadAsync(HttpContext context, ICatalogStore store, string guid, bool edit)
    {
        var caller = await ApiAuth.UserAsync(context);
        var scope = (await Caller.GetAsync(context)).ScopedContent;
        if (!Guid.TryParse(guid, out var id))
        {
            return (null, caller, ApiErrors.Error(StatusCodes.Status404NotFound, ApiErrors.InvalidId, $"'{guid}' is not a valid content GUID."));
        }
        // Checked before the lookup: the answer for another item is the same whether it exists or not.
        if (!ContentAccess.InScope(scope, id))
        {
            return (null, caller, ApiErrors.Forbidden(ApiAuth.ScopedKeyMessage));
        }
        var item = await store.GetContentAsync(id, context.RequestAborted);
        if (item is null || !ContentAccess.CanView(item, caller))
        {
            return (null, caller, ApiErrors.NotFoundError("content"));
        }
        if (edit && !ContentAccess.CanEdit(item, caller))
        {
            return (null, caller, ApiErrors.Forbidden("You may not change this content."));
        }
        return (item, caller, null);
    }
}
