using System.Collections.Concurrent;
using Connect.Server.Cluster;
using Orleans.Runtime;

namespace Connect.Server.Tests.Cluster;

/// <summary>What a test reads back from a persistent-state test grain.</summary>
[GenerateSerializer, Immutable, Alias("Connect.Tests.StateSnapshot")]
public sealed record StateSnapshot([property: Id(0)] string? Value, [property: Id(1)] string? ETag, [property: Id(2)] bool RecordExists);

[GenerateSerializer, Alias("Connect.Tests.TestState")]
public sealed class TestState
{
    [Id(0)] public string? Value { get; set; }
}

[Alias("Connect.Tests.IStateTestGrain")]
public interface IStateTestGrain : IGrainWithGuidKey
{
    [Alias("Set")] Task Set(string value);
    [Alias("Get")] Task<StateSnapshot> Get();
    [Alias("Clear")] Task Clear();
    [Alias("Deactivate")] Task Deactivate();
}

/// <summary>Same key type and same state name as <see cref="IStateTestGrain"/>, but another grain type, on the default storage.</summary>
[Alias("Connect.Tests.IOtherStateTestGrain")]
public interface IOtherStateTestGrain : IGrainWithGuidKey
{
    [Alias("Set")] Task Set(string value);
    [Alias("Get")] Task<StateSnapshot> Get();
    [Alias("Clear")] Task Clear();
    [Alias("Deactivate")] Task Deactivate();
}

/// <summary>On an ADO.NET storage that clears by emptying the row (Orleans' default) rather than deleting it.</summary>
[Alias("Connect.Tests.ITombstoneStateTestGrain")]
public interface ITombstoneStateTestGrain : IGrainWithGuidKey
{
    [Alias("Set")] Task Set(string value);
    [Alias("Get")] Task<StateSnapshot> Get();
    [Alias("Clear")] Task Clear();
    [Alias("Deactivate")] Task Deactivate();
}

public abstract class StateTestGrainBase(IPersistentState<TestState> state) : Grain
{
    public async Task Set(string value)
    {
        state.State.Value = value;
        await state.WriteStateAsync();
    }

    public Task<StateSnapshot> Get() => Task.FromResult(new StateSnapshot(state.State.Value, state.Etag, state.RecordExists));

    public Task Clear() => state.ClearStateAsync();

    public Task Deactivate()
    {
        DeactivateOnIdle();
        return Task.CompletedTask;
    }
}

public sealed class StateTestGrain([PersistentState("s", OrleansPostgres.StorageName)] IPersistentState<TestState> state)
    : StateTestGrainBase(state), IStateTestGrain;

public sealed class OtherStateTestGrain([PersistentState("s")] IPersistentState<TestState> state)
    : StateTestGrainBase(state), IOtherStateTestGrain;

public sealed class TombstoneStateTestGrain([PersistentState("s", TombstoneStateTestGrain.Storage)] IPersistentState<TestState> state)
    : StateTestGrainBase(state), ITombstoneStateTestGrain
{
    public const string Storage = "tombstones";
}

[Alias("Connect.Tests.IReminderTestGrain")]
public interface IReminderTestGrain : IGrainWithGuidKey
{
    [Alias("Register")] Task Register(string name, TimeSpan dueTime, TimeSpan period);
    [Alias("Unregister")] Task Unregister(string name);
    [Alias("Has")] Task<bool> Has(string name);
    [Alias("List")] Task<List<string>> List();
    [Alias("Deactivate")] Task Deactivate();
}

/// <summary>Reminder ticks as the test sees them: which grain, which reminder, which activation took it.</summary>
public static class ReminderTicks
{
    private static readonly ConcurrentDictionary<Guid, ConcurrentQueue<(string Reminder, string Activation)>> Ticks = new();

    public static void Record(Guid grain, string reminder, string activation) =>
        Ticks.GetOrAdd(grain, _ => new()).Enqueue((reminder, activation));

    public static IReadOnlyList<(string Reminder, string Activation)> Of(Guid grain) =>
        Ticks.TryGetValue(grain, out var ticks) ? ticks.ToArray() : [];
}

public sealed class ReminderTestGrain : Grain, IReminderTestGrain, IRemindable
{
    public async Task Register(string name, TimeSpan dueTime, TimeSpan period) =>
        await this.RegisterOrUpdateReminder(name, dueTime, period);

    public async Task Unregister(string name)
    {
        if (await this.GetReminder(name) is { } reminder)
        {
            await this.UnregisterReminder(reminder);
        }
    }

    public async Task<bool> Has(string name) => await this.GetReminder(name) is not null;

    public async Task<List<string>> List() => [.. (await this.GetReminders()).Select(r => r.ReminderName)];

    public Task Deactivate()
    {
        DeactivateOnIdle();
        return Task.CompletedTask;
    }

    public Task ReceiveReminder(string reminderName, TickStatus status)
    {
        ReminderTicks.Record(this.GetPrimaryKey(), reminderName, GrainContext.ActivationId.ToString());
        return Task.CompletedTask;
    }
}
