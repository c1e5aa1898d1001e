using Connect.Core.Model;

namespace Connect.Data;

/// <summary>
/// The queryable catalog: users, keys, content, bundles, tasks, jobs. Lists and lookups read it directly;
/// a content row is written only by its ContentGrain (optimistic <see cref="ContentItem.RowVersion"/> check).
/// The single-node default is SQLite; cluster mode adds PostgreSQL behind the same contract.
/// </summary>
public interface ICatalogStore
{
    Task MigrateAsync(CancellationToken ct = default);

    // Users and keys
    Task<int> CountUsersAsync(CancellationToken ct = default);
    Task<UserInfo> CreateUserAsync(NewUser user, CancellationToken ct = default);
    Task<UserInfo?> GetUserAsync(Guid guid, CancellationToken ct = default);
    Task<UserInfo?> GetUserByNameAsync(string username, CancellationToken ct = default);
    Task<IReadOnlyList<UserInfo>> ListUsersAsync(CancellationToken ct = default);
    /// <param name="contentScope">confines the key to this content item (it must exist; the key goes when the item does), or null</param>
    Task<ApiKeyInfo> CreateApiKeyAsync(Guid userGuid, string name, string keyHash, Guid? contentScope = null, CancellationToken ct = default);
    Task<IReadOnlyList<ApiKeyInfo>> ListApiKeysAsync(Guid userGuid, CancellationToken ct = default);
    Task<bool> DeleteApiKeyAsync(Guid userGuid, long keyId, CancellationToken ct = default);
    /// <summary>Removes every key with this name, whoever owns it (the per-process keys of content jobs).</summary>
    Task<int> DeleteApiKeysNamedAsync(string name, CancellationToken ct = default);
    /// <summary>The user owning the key with this hash and the key's content scope, or null. Reads only: use is recorded by <see cref="RecordApiKeysUsedAsync"/>.</summary>
    Task<ApiKeyHolder?> FindUserByKeyHashAsync(string keyHash, CancellationToken ct = default);
    /// <summary>
    /// Records when each key (by hash) was last used, in one write; a mark only moves forward, and unknown (deleted)
    /// hashes are ignored. The front end batches these instead of writing on every request.
    /// </summary>
    Task RecordApiKeysUsedAsync(IReadOnlyCollection<KeyValuePair<string, DateTimeOffset>> lastUsed, CancellationToken ct = default);
    /// <summary>Locks or unlocks a user (a locked user's keys are refused); the updated user, or null when there is none.</summary>
    Task<UserInfo?> SetUserLockedAsync(Guid guid, bool locked, DateTimeOffset now, CancellationToken ct = default);
    /// <summary>Creates the first administrator and its key in one transaction; null when any user exists.</summary>
    Task<UserInfo?> BootstrapAdministratorAsync(NewUser admin, string keyName, string keyHash, CancellationToken ct = default);

    // Content
    /// <exception cref="CatalogConflictException">the owner already has an item with this name</exception>
    Task<ContentItem> CreateContentAsync(ContentSettings settings, DateTimeOffset now, CancellationToken ct = default);
    Task<ContentItem?> GetContentAsync(Guid guid, CancellationToken ct = default);
    /// <summary>By the numeric id (the legacy "app id" older clients still send).</summary>
    Task<ContentItem?> GetContentByIdAsync(long id, CancellationToken ct = default);
    Task<IReadOnlyList<ContentItem>> ListContentAsync(ContentQuery query, CancellationToken ct = default);
    /// <exception cref="CatalogConcurrencyException">the row changed since <paramref name="expectedVersion"/></exception>
    /// <exception cref="CatalogConflictException">the new name clashes with another of the owner's items</exception>
    Task<ContentItem> UpdateContentSettingsAsync(Guid guid, ContentSettings settings, long expectedVersion, CancellationToken ct = default);
    Task<ContentItem> ActivateBundleAsync(Guid guid, BundleActivation activation, long expectedVersion, CancellationToken ct = default);
    Task<bool> DeleteContentAsync(Guid guid, CancellationToken ct = default);
    Task<IReadOnlyList<ContentItem>> ListContentNeedingProcessesAsync(CancellationToken ct = default);

    // Bundles
    Task<BundleInfo> AddBundleAsync(NewBundle bundle, CancellationToken ct = default);
    Task<BundleInfo?> GetBundleAsync(Guid contentGuid, long bundleId, CancellationToken ct = default);
    Task<IReadOnlyList<BundleInfo>> ListBundlesAsync(Guid contentGuid, CancellationToken ct = default);
    Task<bool> DeleteBundleAsync(Guid contentGuid, long bundleId, CancellationToken ct = default);
    Task SetBundlePythonVersionAsync(long bundleId, string? pyVersion, CancellationToken ct = default);

    // Environment variables (values are ciphertext: the store never sees plaintext)
    Task<IReadOnlyList<string>> GetEnvironmentNamesAsync(Guid contentGuid, CancellationToken ct = default);
    Task<IReadOnlyDictionary<string, byte[]>> GetEnvironmentAsync(Guid contentGuid, CancellationToken ct = default);
    /// <summary>Sets (non-null) or removes (null) variables; with <paramref name="replaceAll"/> others are removed first.</summary>
    Task<IReadOnlyList<string>> UpdateEnvironmentAsync(Guid contentGuid, IReadOnlyList<KeyValuePair<string, byte[]?>> changes, bool replaceAll, CancellationToken ct = default);

    // Tasks
    Task CreateTaskAsync(TaskInfo task, CancellationToken ct = default);
    Task<TaskInfo?> GetTaskAsync(string id, CancellationToken ct = default);
    Task AppendTaskOutputAsync(string id, int firstLine, IReadOnlyList<string> lines, CancellationToken ct = default);
    Task<IReadOnlyList<string>> GetTaskOutputAsync(string id, int first, CancellationToken ct = default);
    Task FinishTaskAsync(string id, int code, string error, DateTimeOffset finishedTime, CancellationToken ct = default);
    /// <summary>Finishes, with code 1 and <paramref name="error"/>, every unfinished task of this host: they died with it.</summary>
    Task<int> FinishInterruptedTasksAsync(string hostname, string error, DateTimeOffset now, CancellationToken ct = default);

    // Jobs
    Task<JobInfo> AddJobAsync(NewJob job, CancellationToken ct = default);
    Task SetJobPidAsync(string key, int pid, CancellationToken ct = default);
    Task FinishJobAsync(string key, int? exitCode, DateTimeOffset endTime, CancellationToken ct = default);
    Task<IReadOnlyList<JobInfo>> ListJobsAsync(Guid contentGuid, CancellationToken ct = default);
    Task<JobInfo?> GetJobAsync(Guid contentGuid, string key, CancellationToken ct = default);
    /// <summary>Jobs of this host still recorded as active.</summary>
    Task<IReadOnlyList<JobInfo>> ListActiveJobsAsync(string hostname, CancellationToken ct = default);
    /// <summary>Marks every job of this host that is still active as finished: their processes died with the node.</summary>
    Task<int> FinishOrphanedJobsAsync(string hostname, DateTimeOffset now, CancellationToken ct = default);

    // Node registry: each node's own row, rewritten about once a second, read by placement.
    /// <summary>Inserts the node's row, or replaces every field of the row with its <see cref="NodeInfo.Name"/>; one statement.</summary>
    Task UpsertNodeAsync(NodeInfo node, CancellationToken ct = default);
    /// <summary>Every registered node, ordered by name (ordinal).</summary>
    Task<IReadOnlyList<NodeInfo>> ListNodesAsync(CancellationToken ct = default);
    /// <summary>Removes the node's row; false when there was none.</summary>
    Task<bool> DeleteNodeAsync(string name, CancellationToken ct = default);
}

/// <summary>A node's row in the registry: what placement needs to pick the least-loaded node, and whether the node still takes work.</summary>
public sealed record NodeInfo(string Name, string SiloAddress, string InternalUrl, int Processes, long MemoryBytes, double CpuLoad, bool Draining, DateTimeOffset StartedTime, DateTimeOffset Heartbeat);

public sealed record NewUser(string Username, string Role, DateTimeOffset Now)
{
    public string Email { get; init; } = "";
    public string FirstName { get; init; } = "";
    public string LastName { get; init; } = "";
}

public sealed record ContentQuery(string? Name = null, Guid? OwnerGuid = null);

public sealed record BundleActivation(long BundleId, string AppMode, string? PyVersion, string? Entrypoint, string ContentCategory, DateTimeOffset DeployedTime);

public sealed record NewBundle(Guid ContentGuid, Guid? CreatedBy, long Size, string Md5, string Sha1, DateTimeOffset CreatedTime)
{
    public BundleSource Source { get; init; } = BundleSource.None;
}

public sealed record NewJob(string Key, Guid ContentGuid, long? BundleId, int? Pid, string Tag, DateTimeOffset StartTime, string Hostname, string? LogFile);

public sealed class CatalogConflictException(string message) : Exception(message);

public sealed class CatalogConcurrencyException(string message) : Exception(message);

/// <summary>The catalog's database cannot be reached or opened (down, unreachable, missing, refusing us); the message names where, never a password.</summary>
public sealed class CatalogUnavailableException(string message, Exception? innerException = null) : Exception(message, innerException);
