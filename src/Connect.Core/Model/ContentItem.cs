namespace Connect.Core.Model;

/// <summary>The writable part of a content item: what publishers set through the API.</summary>
[GenerateSerializer, Immutable, Alias("Connect.ContentSettings")]
public sealed record ContentSettings
{
    [Id(0)] public required string Name { get; init; }
    [Id(1)] public string Title { get; init; } = "";
    [Id(2)] public string Description { get; init; } = "";
    [Id(3)] public string AccessType { get; init; } = Content.AccessTypes.Acl;
    [Id(4)] public bool Locked { get; init; }
    [Id(5)] public string LockedMessage { get; init; } = "";
    [Id(6)] public RuntimeSettings Runtime { get; init; } = RuntimeSettings.Empty;
    [Id(7)] public required Guid OwnerGuid { get; init; }
}

/// <summary>A content item as the catalog stores it.</summary>
[GenerateSerializer, Immutable, Alias("Connect.ContentItem")]
public sealed record ContentItem
{
    [Id(0)] public required long Id { get; init; }
    [Id(1)] public required Guid Guid { get; init; }
    [Id(2)] public required ContentSettings Settings { get; init; }
    [Id(3)] public required DateTimeOffset CreatedTime { get; init; }
    [Id(4)] public DateTimeOffset? LastDeployedTime { get; init; }
    [Id(5)] public long? BundleId { get; init; }
    [Id(6)] public string AppMode { get; init; } = Content.AppModes.Unknown;
    [Id(7)] public string ContentCategory { get; init; } = "";
    [Id(8)] public string? PyVersion { get; init; }
    /// <summary>Optimistic-concurrency token: bumped by every write of the row.</summary>
    [Id(9)] public long RowVersion { get; init; }
    /// <summary>Entry point of the active bundle (module or file), copied from its manifest at deploy.</summary>
    [Id(10)] public string? Entrypoint { get; init; }
}
