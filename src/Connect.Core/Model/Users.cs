namespace Connect.Core.Model;

public static class UserRoles
{
    public const string Administrator = "administrator";
    public const string Publisher = "publisher";
    public const string Viewer = "viewer";

    public static bool IsValid(string role) => role is Administrator or Publisher or Viewer;
}

[GenerateSerializer, Immutable, Alias("Connect.UserInfo")]
public sealed record UserInfo
{
    [Id(0)] public required long Id { get; init; }
    [Id(1)] public required Guid Guid { get; init; }
    [Id(2)] public required string Username { get; init; }
    [Id(3)] public string Email { get; init; } = "";
    [Id(4)] public string FirstName { get; init; } = "";
    [Id(5)] public string LastName { get; init; } = "";
    [Id(6)] public required string Role { get; init; }
    [Id(7)] public required DateTimeOffset CreatedTime { get; init; }
    [Id(8)] public required DateTimeOffset UpdatedTime { get; init; }
    [Id(9)] public DateTimeOffset? ActiveTime { get; init; }
    [Id(10)] public bool Locked { get; init; }
    [Id(11)] public bool Confirmed { get; init; } = true;

    public bool IsAdmin => Role == UserRoles.Administrator;
    public bool CanPublish => Role is UserRoles.Administrator or UserRoles.Publisher;
}

/// <param name="ContentScope">The one content item the key is confined to (see <c>ContentAccess</c>), or null for a key that acts as its user everywhere.</param>
public sealed record ApiKeyInfo(long Id, Guid UserGuid, string Name, DateTimeOffset CreatedTime, DateTimeOffset? LastUsedTime, Guid? ContentScope = null);

/// <summary>Who a presented key speaks for: its user, and the content item it is confined to, if any.</summary>
public sealed record ApiKeyHolder(UserInfo User, Guid? ContentScope);
