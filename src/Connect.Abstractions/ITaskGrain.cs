namespace Connect.Abstractions;

/// <summary>
/// A long-running operation (deploy, render) with an output log that clients long-poll. Output is written
/// through to the catalog, so a task outlives its activation.
/// </summary>
[Alias("Connect.ITaskGrain")]
public interface ITaskGrain : IGrainWithStringKey
{
    [Alias("Append")]
    Task AppendAsync(IReadOnlyList<string> lines);

    [Alias("Finish")]
    Task FinishAsync(int code, string error);

    /// <summary>Output from line <paramref name="first"/>; waits up to <paramref name="wait"/> for news when there is none.</summary>
    [Alias("Poll")]
    Task<TaskSnapshot?> PollAsync(int first, TimeSpan wait);
}

[GenerateSerializer, Immutable, Alias("Connect.TaskSnapshot")]
public sealed record TaskSnapshot(
    [property: Id(0)] string Id,
    [property: Id(1)] IReadOnlyList<string> Output,
    [property: Id(2)] int Last,
    [property: Id(3)] bool Finished,
    [property: Id(4)] int Code,
    [property: Id(5)] string Error,
    [property: Id(6)] Guid? UserGuid,
    [property: Id(7)] Guid? ContentGuid);
