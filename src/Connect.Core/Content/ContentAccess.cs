using Connect.Core.Model;

namespace Connect.Core.Content;

public enum ContentRole
{
    None = 0,
    Viewer = 1,
    Editor = 2,
    Owner = 3,
}

/// <summary>
/// The one place that decides who may see or change a content item. Browser sessions, groups and the
/// content ACL arrive later; they extend this class rather than adding checks at call sites.
/// </summary>
/// <remarks>
/// <para>API keys scoped to one content item (<c>scope</c> below: the CONNECT_API_KEY a content process gets) exist so
/// that a key stolen from a process is worth no more than that process. Such a key:</para>
/// <list type="bullet">
/// <item>acts as its user (the item's owner) on its own item: reads everything, changes settings, environment and
/// bundles, deploys — as Posit's process key does — but may not delete the item (<see cref="CanDelete"/>);</item>
/// <item>is nobody on any other item: the publisher API refuses it (<see cref="InScope"/>), the content front end
/// gives it what a viewer without a key gets (<see cref="ActingUser"/>);</item>
/// <item>may do nothing server-wide that reaches beyond its item — create content, manage users or keys
/// (<see cref="CanActServerWide"/>) — but may still ask who it is and read the server settings.</item>
/// </list>
/// </remarks>
public static class ContentAccess
{
    public static ContentRole RoleOf(ContentItem content, UserInfo? caller)
    {
        if (caller is null || caller.Locked)
        {
            return ContentRole.None;
        }
        if (caller.Guid == content.Settings.OwnerGuid)
        {
            return ContentRole.Owner;
        }
        // Administrators manage every item, as in Posit Connect.
        if (caller.IsAdmin)
        {
            return ContentRole.Editor;
        }
        return content.Settings.AccessType is AccessTypes.All or AccessTypes.LoggedIn ? ContentRole.Viewer : ContentRole.None;
    }

    public static bool CanView(ContentItem content, UserInfo? caller) =>
        content.Settings.AccessType == AccessTypes.All || RoleOf(content, caller) >= ContentRole.Viewer;

    public static bool CanEdit(ContentItem content, UserInfo? caller) => RoleOf(content, caller) >= ContentRole.Editor;

    /// <summary>Whether a key with this scope may address <paramref name="content"/> at all through the publisher API.</summary>
    public static bool InScope(Guid? scope, Guid content) => scope is null || scope == content;

    /// <summary>The user a request acts as towards <paramref name="content"/>: a key scoped to another item carries no identity there.</summary>
    public static UserInfo? ActingUser(ContentItem content, UserInfo? caller, Guid? scope) =>
        InScope(scope, content.Guid) ? caller : null;

    /// <summary>Deleting an item takes an unscoped key: a process must not be able to remove the content it serves.</summary>
    public static bool CanDelete(ContentItem content, UserInfo? caller, Guid? scope) => scope is null && CanEdit(content, caller);

    /// <summary>Creating content and managing users or keys reach beyond any one item: only unscoped keys may.</summary>
    public static bool CanActServerWide(Guid? scope) => scope is null;

    /// <summary>Posit's <c>app_role</c> field: the caller's relation to the item.</summary>
    public static string AppRole(ContentItem content, UserInfo? caller) => RoleOf(content, caller) switch
    {
        ContentRole.Owner => "owner",
        ContentRole.Editor => "editor",
        ContentRole.Viewer => "viewer",
        _ => "none",
    };
}
