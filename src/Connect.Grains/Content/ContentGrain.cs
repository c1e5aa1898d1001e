using System.Security.Cryptography;
using Connect.Abstractions;
using Connect.Core.Content;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data;
using Connect.Grains.Deployment;
using Connect.Grains.Tasks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Orleans.Concurrency;
using Orleans.Runtime;

namespace Connect.Grains.Content;

/// <summary>
/// One per content item. Single writer of the item's catalog row, owner of its scaling policy and of the
/// processes that serve it, and the place its deployments run, one at a time.
/// Reentrant: a connection waiting for a process to start must not hold up the others, nor a deploy.
/// Every await is followed by re-reading state, never by trusting what was read before it.
/// </summary>
[Reentrant]
public sealed partial class ContentGrain(
    ICatalogStore store,
    Connect.Data.Security.ApiKeyCache keys,
    DeploymentPipeline pipeline,
    DataPaths paths,
    IOptions<SchedulerDefaults> scheduler,
    IOptions<ConnectOptions> options,
    ContentChanges changes,
    LocalNode node,
    Connect.Data.Cluster.ClusterNodes nodes,
    IClusterMembershipService membership,
    TimeProvider time,
    ILogger<ContentGrain> logger) : Grain, IContentGrain
{
    private readonly Dictionary<Guid, ProcessEntry> _processes = [];
    private ContentItem? _item;
    private ScalingPolicy _policy = new SchedulerDefaults().Resolve(RuntimeSettings.Empty);
    private (string Error, IReadOnlyList<string> Tail, DateTimeOffset At)? _lastFailure;
    /// <summary>Failed starts and unexpected exits since the last reset (redeploy, or a process that served past the backoff window).</summary>
    private int _consecutiveFailures;
    /// <summary>Times of failures within Scheduler:CrashLoopWindowSeconds, oldest first.</summary>
    private readonly Queue<DateTimeOffset> _recentFailures = new();
    /// <summary>Until then new connections get the last failure instead of a new start each.</summary>
    private DateTimeOffset _holdUntil = DateTimeOffset.MinValue;
    private DateTimeOffset? _crashLoopSince;
    private Task _deployments = Task.CompletedTask;
    private int _deploying;
    private bool _deleting;
    private long? _buildingBundle;
    private CancellationTokenSource? _deployCancel;
    private IGrainTimer? _retryMinimum;
    /// <summary>Starts refused by their node (full, draining, gone) since the last one that started.</summary>
    private int _unplacedInARow;
    /// <summary>Until then min_processes waits: every node refused the last starts, and asking again at once would loop.</summary>
    private DateTimeOffset _placementPauseUntil = DateTimeOffset.MinValue;

    /// <summary>Refusals in a row that are placed again at once; each leaves the refusing node out of the next choice.</summary>
    private const int ImmediatePlacements = 3;

    /// <summary>After that, a few heartbeats, so that the registry shows which nodes have room again.</summary>
    private static readonly TimeSpan PlacementPause = TimeSpan.FromSeconds(5);

    private Guid Id => this.GetPrimaryKey();

    public override async Task OnActivateAsync(CancellationToken cancellationToken)
    {
        _item = await store.GetContentAsync(Id, cancellationToken);
        if (_item is not null)
        {
            _policy = scheduler.Value.Resolve(_item.Settings.Runtime);
            if (AppModes.IsInteractive(_item.AppMode) && _item.BundleId is not null)
            {
                await AdoptRunningProcessesAsync(cancellationToken);
            }
        }
    }

    public override Task OnDeactivateAsync(DeactivationReason reason, CancellationToken cancellationToken)
    {
        // Processes outlive this activation: it is kept alive while it has any, so it goes only when its silo stops or
        // dies, and the next activation (on another silo) adopts them from the nodes that run them.
        LogDeactivating(logger, Id, reason.ToString(), _processes.Count);
        return Task.CompletedTask;
    }

    /// <summary>
    /// A new activation learns which processes of the item are running from the nodes themselves (the node
    /// supervisors are the truth about what runs where): after its previous silo died, or after a restart of a
    /// single node (where there are none). A node that does not answer in time is skipped; its processes, unknown
    /// here, are stopped when their idle check asks about them.
    /// </summary>
    private async Task AdoptRunningProcessesAsync(CancellationToken ct)
    {
        var silos = membership.CurrentSnapshot.Members.Values
            .Where(m => m.Status == SiloStatus.Active)
            .Select(m => m.SiloAddress.ToParsableString())
            .ToArray();
        var answers = await Task.WhenAll(silos.Select(async silo =>
        {
            try
            {
                return await GrainFactory.GetGrain<INodeGrain>(silo).ListProcessesAsync(Id).WaitAsync(TimeSpan.FromSeconds(3), time, ct);
            }
            catch (Exception e) when (e is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                LogAdoptFailed(logger, Id, silo, e.Message);
                return [];
            }
        }));
        foreach (var endpoint in answers.SelectMany(a => a))
        {
            _processes[endpoint.ProcessId] = new ProcessEntry(endpoint.ProcessId, endpoint.JobKey, endpoint.BundleId)
            {
                Started = Task.FromResult(new ProcessStartResult { Started = true, Silo = endpoint.Silo, Node = endpoint.Node, InternalUrl = endpoint.InternalUrl }),
                Endpoint = endpoint,
                ReadyAt = time.GetUtcNow(),
            };
        }
        if (_processes.Count > 0)
        {
            LogAdopted(logger, Id, _processes.Count);
            UpdateKeepAlive();
        }
    }

    public async Task ReportUnreachableAsync(Guid processId)
    {
        if (!_processes.TryGetValue(processId, out var entry) || entry.Endpoint?.Silo is not { } silo || !_probing.Add(silo))
        {
            return;
        }
        try
        {
            await GrainFactory.GetGrain<INodeGrain>(silo).ListProcessesAsync(Id).WaitAsync(TimeSpan.FromSeconds(1), time);
        }
        catch (Exception e) when (e is SiloUnavailableException or Orleans.Runtime.Messaging.ConnectionFailedException or OrleansMessageRejectionException)
        {
            // Refused outright: the node's process is gone. The membership will agree within seconds; viewers need not wait.
            LogUnreachable(logger, Id, silo, e.GetType().Name);
            nodes.MarkUnreachable(silo, TimeSpan.FromSeconds(30));
            await NodeLostAsync(silo);
        }
        catch (TimeoutException)
        {
            // Slow, not gone: failure detection decides.
        }
        finally
        {
            _probing.Remove(silo);
        }
    }

    private readonly HashSet<string> _probing = new(StringComparer.Ordinal);

    public async Task NodeLostAsync(string silo)
    {
        var lost = _processes.Values.Where(p => p.Endpoint?.Silo == silo).ToArray();
        foreach (var entry in lost)
        {
            _processes.Remove(entry.Id);
        }
        if (lost.Length > 0)
        {
            LogNodeLost(logger, Id, silo, lost.Length);
            UpdateKeepAlive();
            changes.Publish(Id);
        }
        await EnsureMinimumAsync();
    }

    private ContentItem Item => _item is not null && !_deleting ? _item : throw new ContentNotFoundException($"content {Id} not found");

    // ------------------------------------------------------------------ settings

    public async Task<ContentItem> UpdateSettingsAsync(ContentSettings settings, long expectedVersion)
    {
        var before = Item;
        // The caller merged its patch onto the row it read; writing it over a newer row would lose that change.
        if (before.RowVersion != expectedVersion)
        {
            throw new ContentConflictException("the content changed while this request was being made; read it again and retry");
        }
        try
        {
            _item = await store.UpdateContentSettingsAsync(Id, settings, before.RowVersion);
        }
        catch (CatalogConflictException e)
        {
            throw new ContentConflictException(e.Message);
        }
        catch (CatalogConcurrencyException)
        {
            // Only this grain writes the row: a clash means it was changed underneath (e.g. restored); resync and refuse.
            _item = await store.GetContentAsync(Id);
            throw new ContentConflictException("the content changed while this request was being made; read it again and retry");
        }
        _policy = scheduler.Value.Resolve(_item.Settings.Runtime);
        changes.Publish(Id);
        if (before.Settings.Runtime != settings.Runtime)
        {
            // Running processes keep their old idle timeout; replace them lazily rather than cutting connections.
            await EnsureMinimumAsync();
        }
        return _item;
    }

    public async Task DeleteAsync()
    {
        _ = Item;
        // From here on the item is gone for every interleaved call: no new process, no new deployment.
        _deleting = true;
        _deployCancel?.Cancel();
        await StopAllAsync();
        try
        {
            await _deployments;
        }
        catch (Exception e)
        {
            LogDeployCrashed(logger, e, Id);
        }
        await store.DeleteContentAsync(Id);
        // The item's scoped keys went with its row.
        keys.InvalidateAll();
        _item = null;
        changes.Publish(Id);
        await RemovePathsAsync(paths.ContentApps(Id), paths.ContentBundles(Id), paths.ContentLogs(Id));
        DeactivateOnIdle();
    }

    // ------------------------------------------------------------------ deployments

    public async Task<string> DeployAsync(long bundleId, Guid? userGuid)
    {
        _ = Item;
        var taskId = NewKey();
        await store.CreateTaskAsync(new TaskInfo { Id = taskId, ContentGuid = Id, UserGuid = userGuid, Kind = "deploy", CreatedTime = time.GetUtcNow(), Hostname = node.Name });
        var previous = _deployments;
        _deployments = RunDeploymentAsync(previous, bundleId, taskId);
        return taskId;
    }

    private async Task RunDeploymentAsync(Task previous, long bundleId, string taskId)
    {
        try
        {
            await previous;
        }
        catch (Exception e)
        {
            LogDeployCrashed(logger, e, Id);
        }
        var task = GrainFactory.GetGrain<ITaskGrain>(taskId);
        var output = new TaskOutput(task, time);
        var timeout = TimeSpan.FromSeconds(options.Value.DeployTimeoutSeconds);
        var code = 1;
        var error = "";
        _deploying++;
        _buildingBundle = bundleId;
        UpdateKeepAlive();
        using var cts = new CancellationTokenSource(timeout, time);
        _deployCancel = cts;
        try
        {
            _ = Item;
            output.Write($"Deploying bundle {bundleId} to content {Id}");
            // The pipeline is node-local file and process work with no grain state: run it off the grain scheduler.
            var outcome = await Task.Run(() => pipeline.RunAsync(Id, bundleId, output.Write, cts.Token), cts.Token);
            await ActivateAsync(bundleId, outcome);
            output.Write("Deployment completed successfully.");
            code = 0;
            LogDeployed(logger, Id, bundleId);
        }
        catch (Exception e) when (e is DeploymentException or OperationCanceledException or ContentNotFoundException)
        {
            error = e switch
            {
                OperationCanceledException when _deleting => "the content was deleted during the deployment",
                OperationCanceledException => $"deployment timed out after {timeout.TotalSeconds:0} s",
                _ => e.Message,
            };
            output.Write("Error: " + error);
            LogDeployFailed(logger, Id, bundleId, error);
        }
        catch (Exception e)
        {
            LogDeployCrashed(logger, e, Id);
            error = "internal error while deploying; see the server log";
            output.Write("Error: " + error);
        }
        finally
        {
            _deployCancel = null;
            _buildingBundle = null;
            _deploying--;
            UpdateKeepAlive();
            // Whatever happened to the output, the task must finish: clients poll until it does.
            try
            {
                await output.DisposeAsync();
            }
            catch (Exception e)
            {
                LogDeployCrashed(logger, e, Id);
            }
            await task.FinishAsync(code, error);
        }
    }

    private async Task ActivateAsync(long bundleId, DeploymentOutcome outcome)
    {
        var activation = new BundleActivation(bundleId, outcome.AppMode, outcome.PyVersion, outcome.Entrypoint, outcome.ContentCategory, time.GetUtcNow());
        for (var attempt = 0; ; attempt++)
        {
            var current = await store.GetContentAsync(Id) ?? throw new ContentNotFoundException($"content {Id} was deleted during the deployment");
            try
            {
                _item = await store.ActivateBundleAsync(Id, activation, current.RowVersion);
                break;
            }
            catch (CatalogConcurrencyException) when (attempt == 0)
            {
                // A settings change interleaved between the read and the write: read again.
            }
        }
        await store.SetBundlePythonVersionAsync(bundleId, outcome.PyVersion);
        _policy = scheduler.Value.Resolve(_item.Settings.Runtime);
        // A new bundle is a new application: its failures start from nothing.
        ClearFailures();
        changes.Publish(Id);
        // Processes of the previous bundle stop; new connections start the new one.
        await StopAllAsync();
        await EnsureMinimumAsync();
    }

    public async Task DeleteBundleAsync(long bundleId)
    {
        var item = Item;
        if (item.BundleId == bundleId)
        {
            throw new ContentConflictException("the active bundle cannot be deleted; deploy another bundle first");
        }
        if (_buildingBundle == bundleId)
        {
            throw new ContentConflictException("this bundle is being deployed; wait for its task to finish");
        }
        await store.DeleteBundleAsync(Id, bundleId);
        await RemovePathsAsync(paths.BundleArchive(Id, bundleId), paths.LaunchPlan(Id, bundleId),
            paths.BundleDirectory(Id, bundleId), paths.OutputDirectory(Id, bundleId));
    }

    /// <summary>Deletes files and directory trees off the grain scheduler (file I/O must not block the activation).</summary>
    private static Task RemovePathsAsync(params string[] targets) => Task.Run(() =>
    {
        foreach (var target in targets)
        {
            if (Directory.Exists(target))
            {
                Directory.Delete(target, recursive: true);
            }
            else if (File.Exists(target))
            {
                File.Delete(target);
            }
        }
    });

    // ------------------------------------------------------------------ processes

    public async Task<ProcessRoute> AcquireProcessAsync(IReadOnlyList<Guid> saturated)
    {
        var item = Item;
        if (item.BundleId is not { } bundleId)
        {
            return new ProcessRoute { Error = "this content has not been deployed yet", Policy = _policy };
        }
        if (!AppModes.IsInteractive(item.AppMode))
        {
            return new ProcessRoute { Error = $"content of type '{item.AppMode}' does not run processes", Policy = _policy };
        }

        // Any process of the active bundle the caller has not seen saturated, ready ones first.
        var candidate = _processes.Values
            .Where(p => p.BundleId == bundleId && !saturated.Contains(p.Id))
            .OrderBy(p => p.Endpoint is null ? 1 : 0)
            .FirstOrDefault();
        if (candidate is null && _processes.Count < _policy.MaxProcesses)
        {
            if (_lastFailure is { } failure && time.GetUtcNow() < _holdUntil)
            {
                if (_crashLoopSince is not null)
                {
                    return new ProcessRoute
                    {
                        Error = $"It failed {_recentFailures.Count} times within {scheduler.Value.CrashLoopWindowSeconds} s; it will not be started again before {_holdUntil:yyyy-MM-dd HH:mm:ss} UTC. Last error: {failure.Error}",
                        LogTail = failure.Tail,
                        CrashLoop = true,
                        Policy = _policy,
                        All = Endpoints(),
                    };
                }
                return new ProcessRoute { Error = failure.Error, LogTail = failure.Tail, Policy = _policy, All = Endpoints() };
            }
            candidate = StartProcess(bundleId);
        }
        if (candidate is null)
        {
            return new ProcessRoute { Policy = _policy, All = Endpoints() };
        }
        var result = await candidate.Started;
        for (var placement = 1; !result.Started && result.NodeUnavailable && placement < 3 && !_deleting && _item?.BundleId == bundleId
            && _processes.Count < _policy.MaxProcesses; placement++)
        {
            // The node chosen could not take it (full, draining, gone): placement will pick another.
            candidate = StartProcess(bundleId);
            result = await candidate.Started;
        }
        if (!result.Started)
        {
            return new ProcessRoute { Error = result.Error, LogTail = result.LogTail, Policy = _policy, All = Endpoints() };
        }
        return new ProcessRoute { Process = candidate.Endpoint, Policy = _policy, All = Endpoints() };
    }

    public Task<IReadOnlyList<ProcessEndpoint>> GetProcessesAsync() => Task.FromResult(Endpoints());

    public Task<ProcessRoute> GetRouteAsync()
    {
        _ = Item;
        return Task.FromResult(new ProcessRoute { Policy = _policy, All = Endpoints() });
    }

    private IReadOnlyList<ProcessEndpoint> Endpoints() =>
        _processes.Values.Where(p => p.Endpoint is not null).Select(p => p.Endpoint!).ToArray();

    private ProcessEntry StartProcess(long bundleId)
    {
        var processId = Guid.NewGuid();
        var entry = new ProcessEntry(processId, NewKey(), bundleId);
        _processes[processId] = entry;
        UpdateKeepAlive();
        entry.Started = StartAndTrackAsync(entry);
        return entry;
    }

    private async Task<ProcessStartResult> StartAndTrackAsync(ProcessEntry entry)
    {
        var request = new ProcessStartRequest(Id, entry.BundleId, entry.JobKey, _policy.InitTimeout, _policy.IdleTimeout);
        ProcessStartResult result;
        try
        {
            // Placement spreads an item's processes over nodes: it reads where the others run from the call's context.
            RequestContext.Set(Connect.Grains.Cluster.LeastLoadedPlacementDirector.SiblingsKey,
                string.Join(',', _processes.Values.Where(p => p.Id != entry.Id && p.Endpoint is not null).Select(p => p.Endpoint!.Silo)));
            RequestContext.Set(Connect.Grains.Cluster.LeastLoadedPlacementDirector.ItemKey, Id.ToString("N"));
            try
            {
                result = await GrainFactory.GetGrain<IProcessGrain>(entry.Id).StartAsync(request);
            }
            finally
            {
                RequestContext.Remove(Connect.Grains.Cluster.LeastLoadedPlacementDirector.SiblingsKey);
                RequestContext.Remove(Connect.Grains.Cluster.LeastLoadedPlacementDirector.ItemKey);
            }
        }
        catch (Exception e) when (e is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException)
        {
            // The node died or left while starting it: not the content's failure; placement picks another node.
            LogStartNodeLost(logger, Id, e.Message);
            result = new ProcessStartResult { Started = false, NodeUnavailable = true, Error = "the node chosen for the process left the cluster" };
        }
        catch (Exception e)
        {
            LogStartCrashed(logger, e, Id);
            // The exception text stays in the server log: the 502 page is seen by viewers.
            result = new ProcessStartResult { Started = false, Error = "the process could not be started because of an internal error" };
        }
        if (result.NodeUnavailable)
        {
            if (!string.IsNullOrEmpty(result.Silo))
            {
                nodes.Refused(result.Silo);
            }
            if (++_unplacedInARow >= ImmediatePlacements)
            {
                _placementPauseUntil = time.GetUtcNow() + PlacementPause;
                LogPlacementPaused(logger, Id, _unplacedInARow, PlacementPause.TotalSeconds, result.Error ?? "");
            }
        }
        else if (result.Started)
        {
            _unplacedInARow = 0;
        }
        if (result.Started && _processes.ContainsKey(entry.Id))
        {
            entry.Endpoint = new ProcessEndpoint(entry.Id, entry.JobKey, result.Silo, result.Port, entry.BundleId, result.Node, result.InternalUrl);
            entry.ReadyAt = time.GetUtcNow();
            if (_crashLoopSince is not null)
            {
                // It starts again: viewers get the app (or, if it crashes once more, a fresh verdict), not a stale 503.
                _crashLoopSince = null;
                changes.Publish(Id);
            }
        }
        else
        {
            _processes.Remove(entry.Id);
            UpdateKeepAlive();
            if (!result.Started && result.NodeUnavailable)
            {
                await EnsureMinimumAsync();
            }
            else if (!result.Started)
            {
                RecordFailure(entry, result.Error ?? "the process failed to start", result.LogTail);
                // A min_processes start that failed is retried after the hold, not only when a request comes.
                await EnsureMinimumAsync();
            }
            else
            {
                // Stopped (redeploy, delete) while it was starting: it has no one to serve.
                await StopProcessAsync(entry.Id, result.Silo);
            }
        }
        return result;
    }

    public Task<bool> ProcessIdleAsync(Guid processId)
    {
        if (!_processes.ContainsKey(processId))
        {
            // Unknown to us (e.g. this activation is newer than the process): nothing accounts for it, stop it.
            return Task.FromResult(true);
        }
        if (_processes.Count <= _policy.MinProcesses && _item?.BundleId == _processes[processId].BundleId)
        {
            return Task.FromResult(false);
        }
        _processes.Remove(processId);
        UpdateKeepAlive();
        return Task.FromResult(true);
    }

    public async Task ProcessExitedAsync(Guid processId, int? exitCode, string message, IReadOnlyList<string> logTail)
    {
        // Idle stops, job kills and stops for a redeploy removed the entry before the exit: only exits nobody asked for
        // get here, and of those a clean 0 or a SIGTERM's 143 is the app shutting down, not failing.
        if (_processes.Remove(processId, out var entry))
        {
            UpdateKeepAlive();
            if (exitCode is not 0 and not 143)
            {
                RecordFailure(entry, message, logTail);
            }
            LogProcessExited(logger, Id, exitCode);
            await EnsureMinimumAsync();
        }
    }

    public async Task<bool> StopJobAsync(string jobKey)
    {
        var entry = _processes.Values.FirstOrDefault(p => p.JobKey == jobKey);
        if (entry is null)
        {
            return false;
        }
        _processes.Remove(entry.Id);
        UpdateKeepAlive();
        await StopProcessAsync(entry.Id, entry.Endpoint?.Silo);
        return true;
    }

    public async Task RestartAsync()
    {
        await StopAllAsync();
        await EnsureMinimumAsync();
    }

    public Task EnsureMinimumAsync()
    {
        if (_deleting || _item is not { BundleId: { } bundleId } item || !AppModes.IsInteractive(item.AppMode) || _processes.Count >= _policy.MinProcesses)
        {
            return Task.CompletedTask;
        }
        var now = time.GetUtcNow();
        var notBefore = _holdUntil > _placementPauseUntil ? _holdUntil : _placementPauseUntil;
        if (now < notBefore)
        {
            // A process that keeps failing is retried after the backoff, one no node takes after the pause: not in a
            // tight loop.
            _retryMinimum ??= this.RegisterGrainTimer(async () =>
            {
                _retryMinimum?.Dispose();
                _retryMinimum = null;
                await EnsureMinimumAsync();
            }, new GrainTimerCreationOptions { DueTime = notBefore - now, Period = Timeout.InfiniteTimeSpan, Interleave = true });
            return Task.CompletedTask;
        }
        while (_processes.Count < _policy.MinProcesses)
        {
            StartProcess(bundleId);
        }
        return Task.CompletedTask;
    }

    public Task<CrashLoopState?> GetCrashLoopAsync()
    {
        if (_crashLoopSince is not { } since || _lastFailure is not { } failure)
        {
            return Task.FromResult<CrashLoopState?>(null);
        }
        ForgetOldFailures(time.GetUtcNow());
        return Task.FromResult<CrashLoopState?>(new CrashLoopState(since, _recentFailures.Count, failure.Error, _holdUntil));
    }

    /// <summary>
    /// Counts a failed start or an unexpected exit once per process and sets the hold before the next start.
    /// A failed start holds for the backoff at once; an exit after serving is replaced at once when isolated (a
    /// crash or memory kill now and then should not lock viewers out) and backs off only when it repeats.
    /// </summary>
    private void RecordFailure(ProcessEntry entry, string error, IReadOnlyList<string> tail)
    {
        var now = time.GetUtcNow();
        if (entry.Failed)
        {
            // The start result and the exit report describe the same failure; keep the more telling text.
            if (tail.Count > 0 && _lastFailure is { } known)
            {
                _lastFailure = (error, tail, known.At);
            }
            return;
        }
        entry.Failed = true;
        var s = scheduler.Value;
        // A process that served for longer than the hold it was started under shows the earlier failures are over.
        if (entry.ReadyAt is { } ready && now - ready > Backoff(Math.Max(1, _consecutiveFailures)))
        {
            _consecutiveFailures = 0;
        }
        _consecutiveFailures++;
        _recentFailures.Enqueue(now);
        ForgetOldFailures(now);
        var hold = entry.ReadyAt is null ? Backoff(_consecutiveFailures)
            : _consecutiveFailures > 1 ? Backoff(_consecutiveFailures - 1)
            : TimeSpan.Zero;
        _holdUntil = now + hold;
        _lastFailure = (error, tail, now);
        if (_recentFailures.Count >= s.CrashLoopFailures && _crashLoopSince is null)
        {
            _crashLoopSince = now;
            LogCrashLoop(logger, Id, _recentFailures.Count, s.CrashLoopWindowSeconds, error);
            changes.Publish(Id);
        }
        LogFailureHold(logger, Id, _consecutiveFailures, hold.TotalSeconds, error);
    }

    private void ForgetOldFailures(DateTimeOffset now)
    {
        var window = TimeSpan.FromSeconds(scheduler.Value.CrashLoopWindowSeconds);
        while (_recentFailures.Count > 0 && now - _recentFailures.Peek() > window)
        {
            _recentFailures.Dequeue();
        }
    }

    /// <summary>The hold after the n-th consecutive failure: the initial value doubling up to the ceiling.</summary>
    private TimeSpan Backoff(int failures)
    {
        var s = scheduler.Value;
        var seconds = s.RestartBackoffInitialSeconds * Math.Pow(2, Math.Min(failures - 1, 30));
        return TimeSpan.FromSeconds(Math.Min(seconds, s.RestartBackoffMaxSeconds));
    }

    private void ClearFailures()
    {
        _lastFailure = null;
        _consecutiveFailures = 0;
        _recentFailures.Clear();
        _holdUntil = DateTimeOffset.MinValue;
        _crashLoopSince = null;
    }

    private async Task StopAllAsync()
    {
        var entries = _processes.Values.ToArray();
        _processes.Clear();
        UpdateKeepAlive();
        changes.Publish(Id);
        await Task.WhenAll(entries.Select(async e =>
        {
            // A start in flight finishes first; its continuation sees the entry gone and stops the process.
            if (e.Endpoint is not null)
            {
                await StopProcessAsync(e.Id, e.Endpoint.Silo);
            }
        }));
    }

    /// <summary>
    /// Stops a process through the node that runs it, named by its silo: its process grain may have been collected since
    /// (or this activation adopted the process), and a new activation of that grain would be placed on whichever node is
    /// least loaded now. Only a process whose start has not answered yet is stopped through its grain, which is busy
    /// starting it and takes the stop after. A node that cannot be reached has left, and its processes with it.
    /// </summary>
    private async Task StopProcessAsync(Guid processId, string? silo)
    {
        if (string.IsNullOrEmpty(silo))
        {
            await GrainFactory.GetGrain<IProcessGrain>(processId).StopAsync();
            return;
        }
        try
        {
            await GrainFactory.GetGrain<INodeGrain>(silo).StopProcessAsync(processId);
        }
        catch (Exception e) when (e is OrleansException or TimeoutException)
        {
            LogStopNodeLost(logger, Id, silo, e.Message);
        }
    }

    /// <summary>
    /// While the item has processes or a deployment runs, its activation must stay: in the steady state the front
    /// end routes from its cache and never calls the grain, and collecting the grain would stop processes that
    /// are serving. Otherwise ordinary collection applies.
    /// </summary>
    private void UpdateKeepAlive() =>
        DelayDeactivation(_processes.Count > 0 || _deploying > 0 ? TimeSpan.MaxValue : TimeSpan.Zero);

    private static string NewKey() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    private sealed class ProcessEntry(Guid id, string jobKey, long bundleId)
    {
        public Guid Id { get; } = id;
        public string JobKey { get; } = jobKey;
        public long BundleId { get; } = bundleId;
        public Task<ProcessStartResult> Started { get; set; } = Task.FromResult(new ProcessStartResult());
        public ProcessEndpoint? Endpoint { get; set; }
        /// <summary>When it became ready; null while starting or if it never did.</summary>
        public DateTimeOffset? ReadyAt { get; set; }
        /// <summary>Its failure has been counted (the start result and the exit report may both tell of it).</summary>
        public bool Failed { get; set; }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content}: adopted {Count} running processes from the nodes")]
    private static partial void LogAdopted(ILogger logger, Guid content, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: node {Silo} did not list its processes: {Error}")]
    private static partial void LogAdoptFailed(ILogger logger, Guid content, string silo, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: node {Silo} refused a call ({Error}); its processes are dropped")]
    private static partial void LogUnreachable(ILogger logger, Guid content, string silo, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: node {Silo} left the cluster with {Count} of its processes")]
    private static partial void LogNodeLost(ILogger logger, Guid content, string silo, int count);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: node {Silo} could not be asked to stop a process: {Error}")]
    private static partial void LogStopNodeLost(ILogger logger, Guid content, string silo, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: {Count} starts in a row refused by their nodes; min_processes waits {Seconds} s: {Error}")]
    private static partial void LogPlacementPaused(ILogger logger, Guid content, int count, double seconds, string error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: the node starting a process left: {Error}")]
    private static partial void LogStartNodeLost(ILogger logger, Guid content, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content}: deactivating ({Reason}) with {Processes} processes")]
    private static partial void LogDeactivating(ILogger logger, Guid content, string reason, int processes);

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content}: bundle {BundleId} deployed")]
    private static partial void LogDeployed(ILogger logger, Guid content, long bundleId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: deploying bundle {BundleId} failed: {Reason}")]
    private static partial void LogDeployFailed(ILogger logger, Guid content, long bundleId, string reason);

    [LoggerMessage(Level = LogLevel.Error, Message = "Content {Content}: deployment crashed")]
    private static partial void LogDeployCrashed(ILogger logger, Exception exception, Guid content);

    [LoggerMessage(Level = LogLevel.Error, Message = "Content {Content}: starting a process crashed")]
    private static partial void LogStartCrashed(ILogger logger, Exception exception, Guid content);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Content {Content}: crash-looping, {Failures} failures within {Window} s; last: {Error}")]
    private static partial void LogCrashLoop(ILogger logger, Guid content, int failures, int window, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content}: failure {Consecutive} in a row, new starts held for {Seconds} s: {Error}")]
    private static partial void LogFailureHold(ILogger logger, Guid content, int consecutive, double seconds, string error);

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content}: a process exited with code {Code}")]
    private static partial void LogProcessExited(ILogger logger, Guid content, int? code);
}
