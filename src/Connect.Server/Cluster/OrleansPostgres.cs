using Orleans.Providers;
using Orleans.Runtime.Hosting;
using Orleans.Storage;

namespace Connect.Server.Cluster;

/// <summary>
/// Cluster mode's Orleans wiring on PostgreSQL: membership, reminders and grain state through Orleans' ADO.NET providers,
/// whose tables and queries <see cref="Connect.Data.Postgres.OrleansPostgresSchema"/> installs (the migration runner must
/// have applied them before the silo starts: a silo without them aborts at start).
/// </summary>
public static class OrleansPostgres
{
    /// <summary>The grain storage name for <c>[PersistentState(name, OrleansPostgres.StorageName)]</c>; also the default storage.</summary>
    public const string StorageName = "connect";

    /// <summary>The ADO.NET invariant Orleans maps to Npgsql's provider factory.</summary>
    public const string Invariant = "Npgsql";

    // The ADO.NET storage itself, registered under a name of its own so that "connect" and the default storage can be the
    // grain-type-scoping wrapper around one instance (one initialisation, one set of queries).
    private const string AdoNetStorageName = "connect-adonet";

    public static ISiloBuilder UseConnectPostgres(this ISiloBuilder silo, string connectionString)
    {
        ArgumentNullException.ThrowIfNull(silo);
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);

        silo.UseAdoNetClustering(o =>
        {
            o.Invariant = Invariant;
            o.ConnectionString = connectionString;
        });
        silo.UseAdoNetReminderService(o =>
        {
            o.Invariant = Invariant;
            o.ConnectionString = connectionString;
        });
        silo.AddAdoNetGrainStorage(AdoNetStorageName, o =>
        {
            o.Invariant = Invariant;
            o.ConnectionString = connectionString;
            // Clearing a grain's state deletes its row instead of leaving a tombstone per deleted content item forever.
            o.DeleteStateOnClear = true;
        });
        silo.Services.AddGrainStorage(StorageName, static (services, _) => GrainTypeScopedStorage.Over(services, AdoNetStorageName));
        silo.Services.AddGrainStorage(ProviderConstants.DEFAULT_STORAGE_PROVIDER_NAME,
            static (services, _) => GrainTypeScopedStorage.Over(services, AdoNetStorageName));
        return silo;
    }

    /// <summary>
    /// Orleans' ADO.NET storage keys a row by the state's name and the grain's key, without the grain's type: a
    /// ContentGrain and another grain keyed by the same content GUID, each with a state named "state", would share (and
    /// overwrite) one row. Qualifying the state name with the grain type keeps them apart, the way reminders already are
    /// (their rows carry the whole grain id); so grain type names persist, as they do for reminders. The state name goes
    /// first because the provider rewrites a name containing a generic type (a backtick) and drops what follows it.
    /// </summary>
    private sealed class GrainTypeScopedStorage(IGrainStorage inner) : IGrainStorage
    {
        public static GrainTypeScopedStorage Over(IServiceProvider services, string name) =>
            new(services.GetRequiredKeyedService<IGrainStorage>(name));

        private static string Scoped(string stateName, GrainId grainId) => $"{stateName}/{grainId.Type}";

        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
            inner.ReadStateAsync(Scoped(stateName, grainId), grainId, grainState);

        public Task ReadStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState, CancellationToken cancellationToken) =>
            inner.ReadStateAsync(Scoped(stateName, grainId), grainId, grainState, cancellationToken);

        public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
            inner.WriteStateAsync(Scoped(stateName, grainId), grainId, grainState);

        public Task WriteStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState, CancellationToken cancellationToken) =>
            inner.WriteStateAsync(Scoped(stateName, grainId), grainId, grainState, cancellationToken);

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState) =>
            inner.ClearStateAsync(Scoped(stateName, grainId), grainId, grainState);

        public Task ClearStateAsync<T>(string stateName, GrainId grainId, IGrainState<T> grainState, CancellationToken cancellationToken) =>
            inner.ClearStateAsync(Scoped(stateName, grainId), grainId, grainState, cancellationToken);
    }
}
