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

    /// <summary>
    /// Output from line <paramref name="first"/>, waiting up to <paramref name="wait"/> when there is nothing new.
    /// Without <paramref name="first"/> (posit-sdk's polling) the whole output is returned after the next change.
    /// </summary>
    // Interleaves with Append/Finish: a poller waiting for news must not hold up the writer that brings it.
    [Alias("Poll"), Orleans.Concurrency.AlwaysInterleave]
    Task<TaskSnapshot?> PollAsync(int? first, TimeSpan wait);
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
