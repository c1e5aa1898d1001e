using Connect.Core.Content;
using Connect.Core.Model;

namespace Connect.Core.Tests.Content;

/// <summary>The rule for keys scoped to one content item (README, API keys).</summary>
public sealed class ContentAccessScopeTests
{
    private static readonly UserInfo Owner = new()
    {
        Id = 1, Guid = Guid.NewGuid(), Username = "owner", Role = UserRoles.Publisher, CreatedTime = DateTimeOffset.UnixEpoch, UpdatedTime = DateTimeOffset.UnixEpoch,
    };

    private static ContentItem Item(string access) => new()
    {
        Id = 1, Guid = Guid.NewGuid(), CreatedTime = DateTimeOffset.UnixEpoch,
        Settings = new ContentSettings { Name = "x", OwnerGuid = Owner.Guid, AccessType = access },
    };

    [Fact]
    public void Its_own_item_sees_the_owner_who_may_change_but_not_delete_it()
    {
        var own = Item(AccessTypes.Acl);

        Assert.True(ContentAccess.InScope(own.Guid, own.Guid));
        Assert.Same(Owner, ContentAccess.ActingUser(own, Owner, own.Guid));
        Assert.True(ContentAccess.CanEdit(own, ContentAccess.ActingUser(own, Owner, own.Guid)));
        Assert.False(ContentAccess.CanDelete(own, Owner, own.Guid));
        Assert.True(ContentAccess.CanDelete(own, Owner, scope: null));
    }

    [Theory]
    [InlineData(AccessTypes.All, true)]
    [InlineData(AccessTypes.LoggedIn, false)]
    [InlineData(AccessTypes.Acl, false)]
    public void Another_item_sees_nobody(string access, bool viewable)
    {
        var own = Item(AccessTypes.Acl);
        var other = Item(access);

        Assert.False(ContentAccess.InScope(own.Guid, other.Guid));
        Assert.Null(ContentAccess.ActingUser(other, Owner, own.Guid));
        Assert.Equal(viewable, ContentAccess.CanView(other, ContentAccess.ActingUser(other, Owner, own.Guid)));
        Assert.False(ContentAccess.CanEdit(other, ContentAccess.ActingUser(other, Owner, own.Guid)));
        Assert.False(ContentAccess.CanDelete(other, Owner, own.Guid));
        // Without a scope the same user owns it.
        Assert.Same(Owner, ContentAccess.ActingUser(other, Owner, scope: null));
    }

    [Fact]
    public void Only_unscoped_keys_act_server_wide()
    {
        Assert.True(ContentAccess.CanActServerWide(scope: null));
        Assert.False(ContentAccess.CanActServerWide(Guid.NewGuid()));
    }
}
