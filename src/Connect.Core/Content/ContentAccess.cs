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

    /// <summary>Posit's <c>app_role</c> field: the caller's relation to the item.</summary>
    public static string AppRole(ContentItem content, UserInfo? caller) => RoleOf(content, caller) switch
    {
        ContentRole.Owner => "owner",
        ContentRole.Editor => "editor",
        ContentRole.Viewer => "viewer",
        _ => "none",
    };
}
