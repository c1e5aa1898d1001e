namespace Connect.Core.Model;

[GenerateSerializer, Immutable, Alias("Connect.BundleInfo")]
public sealed record BundleInfo
{
    [Id(0)] public required long Id { get; init; }
    [Id(1)] public required Guid ContentGuid { get; init; }
    [Id(2)] public required DateTimeOffset CreatedTime { get; init; }
    [Id(3)] public Guid? CreatedBy { get; init; }
    [Id(4)] public required long Size { get; init; }
    [Id(5)] public required string Md5 { get; init; }
    [Id(6)] public required string Sha1 { get; init; }
    /// <summary>Python version the bundle's manifest asks for, known once the bundle has been deployed.</summary>
    [Id(7)] public string? PyVersion { get; init; }
    /// <summary>Where the bundle's files came from, as the publishing client reported it (git deploys, --metadata).</summary>
    [Id(8)] public BundleSource Source { get; init; } = BundleSource.None;
}

[GenerateSerializer, Immutable, Alias("Connect.BundleSource")]
public sealed record BundleSource(
    [property: Id(0)] string? Source,
    [property: Id(1)] string? SourceRepo,
    [property: Id(2)] string? SourceBranch,
    [property: Id(3)] string? SourceCommit)
{
    public static BundleSource None { get; } = new(null, null, null, null);
}

/// <summary>Job status values as Connect reports them.</summary>
public static class JobStatus
{
    public const int Active = 0;
    public const int Finished = 1;
    public const int Finalized = 2;
}

/// <summary>A process or a build step run for a content item ("job" in Connect's API).</summary>
[GenerateSerializer, Immutable, Alias("Connect.JobInfo")]
public sealed record JobInfo
{
    [Id(0)] public required long Id { get; init; }
    [Id(1)] public required string Key { get; init; }
    [Id(2)] public required Guid ContentGuid { get; init; }
    [Id(3)] public long? BundleId { get; init; }
    [Id(4)] public int? Pid { get; init; }
    [Id(5)] public required string Tag { get; init; }
    [Id(6)] public required DateTimeOffset StartTime { get; init; }
    [Id(7)] public DateTimeOffset? EndTime { get; init; }
    [Id(8)] public int? ExitCode { get; init; }
    [Id(9)] public int Status { get; init; }
    [Id(10)] public string Hostname { get; init; } = "";
    [Id(11)] public string? LogFile { get; init; }
}

[GenerateSerializer, Immutable, Alias("Connect.TaskInfo")]
public sealed record TaskInfo
{
    [Id(0)] public required string Id { get; init; }
    [Id(1)] public Guid? ContentGuid { get; init; }
    [Id(2)] public Guid? UserGuid { get; init; }
    [Id(3)] public required string Kind { get; init; }
    [Id(4)] public required DateTimeOffset CreatedTime { get; init; }
    [Id(5)] public bool Finished { get; init; }
    [Id(6)] public int Code { get; init; }
    [Id(7)] public string Error { get; init; } = "";
    [Id(8)] public DateTimeOffset? FinishedTime { get; init; }
    /// <summary>The node that runs the task: if it restarts, its unfinished tasks are closed as interrupted.</summary>
    [Id(9)] public string? Hostname { get; init; }
}
