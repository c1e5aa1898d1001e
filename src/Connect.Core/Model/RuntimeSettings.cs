namespace Connect.Core.Model;

/// <summary>
/// Per-content process settings. A null value means "use the server's scheduler default"; the effective
/// values come from <see cref="SchedulerDefaults.Resolve"/>.
/// </summary>
[GenerateSerializer, Immutable, Alias("Connect.RuntimeSettings")]
public sealed record RuntimeSettings
{
    [Id(0)] public int? ConnectionTimeout { get; init; }
    [Id(1)] public int? ReadTimeout { get; init; }
    [Id(2)] public int? InitTimeout { get; init; }
    [Id(3)] public int? IdleTimeout { get; init; }
    [Id(4)] public int? MaxProcesses { get; init; }
    [Id(5)] public int? MinProcesses { get; init; }
    [Id(6)] public int? MaxConnsPerProcess { get; init; }
    [Id(7)] public double? LoadFactor { get; init; }

    public static RuntimeSettings Empty { get; } = new();
}

/// <summary>The effective scaling policy of one content item, with every default applied.</summary>
[GenerateSerializer, Immutable, Alias("Connect.ScalingPolicy")]
public sealed record ScalingPolicy(
    [property: Id(0)] int MinProcesses,
    [property: Id(1)] int MaxProcesses,
    [property: Id(2)] int MaxConnsPerProcess,
    [property: Id(3)] double LoadFactor,
    [property: Id(4)] TimeSpan IdleTimeout,
    [property: Id(5)] TimeSpan InitTimeout,
    [property: Id(6)] TimeSpan ConnectionTimeout,
    [property: Id(7)] TimeSpan ReadTimeout);
