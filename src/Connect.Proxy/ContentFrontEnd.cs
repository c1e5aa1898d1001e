using System.Net.Sockets;
using Connect.Abstractions;
using Connect.Core.Content;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data.Cluster;
using Connect.Data.Security;
using Connect.Runtime.Supervision;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Orleans.Runtime;
using Yarp.ReverseProxy.Forwarder;

namespace Connect.Proxy;

/// <summary>
/// The silo-hosted front end: <c>/content/{guid}/…</c> is served from files (static, rendered) or forwarded to
/// one of the item's processes (HTTP and WebSockets) through YARP's forwarder with one shared invoker.
/// The process is chosen here from node-local counts; the ContentGrain is asked only when no known process
/// has room under the load factor.
/// </summary>
public sealed partial class ContentFrontEnd(
    IHttpForwarder forwarder,
    ForwarderInvoker invoker,
    ContentCatalogCache cache,
    ProcessSupervisor supervisor,
    IGrainFactory grains,
    DataPaths paths,
    ServerUrl serverUrl,
    LocalNode node,
    ClusterNodes nodes,
    ClusterSecret secret,
    RemoteLoads remoteLoads,
    TimeProvider time,
    ILogger<ContentFrontEnd> logger)
{
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    public static void Map(IEndpointRouteBuilder app)
    {
        app.Map("/content/{guid}/{**path}", Handle);
        app.Map(InternalRoutes.ProcessPrefix + "{process}/{**path}", async (HttpContext context, ContentFrontEnd frontEnd, string process) =>
        {
            await frontEnd.ServeHopAsync(context, process);
            return EmptyResult.Instance;
        });
    }

    private static Task<IResult> Handle(HttpContext context, ContentFrontEnd frontEnd, string guid, string? path)
    {
        // Routing ignores a trailing slash, but apps resolve relative links against it: /content/{guid} must redirect.
        if (string.IsNullOrEmpty(path) && !context.Request.Path.Value!.EndsWith('/'))
        {
            return Task.FromResult<IResult>(TypedResults.Redirect($"{context.Request.PathBase}/content/{guid}/{context.Request.QueryString}", permanent: true));
        }
        return frontEnd.HandleAsync(context, guid, path ?? "");
    }

    public async Task<IResult> HandleAsync(HttpContext context, string guidText, string path)
    {
        if (!Guid.TryParse(guidText, out var guid))
        {
            return ErrorPages.Render(404, "Not found", "There is no content at this address.");
        }
        var item = await cache.GetItemAsync(guid, context.RequestAborted);
        if (item is null)
        {
            return ErrorPages.Render(404, "Not found", "There is no content at this address.");
        }
        var caller = await Caller.GetAsync(context);
        // A key scoped to another item is worth nothing here: the request gets the access it would have without a key
        // (but is told 403, not "log in": it did present a key).
        var user = caller.UserFor(item);
        if (!ContentAccess.CanView(item, user))
        {
            return caller.User is null
                ? ErrorPages.Render(401, "Please log in", "This content is only available to signed-in users (send an API key: Authorization: Key <key>).")
                : ErrorPages.Render(403, "Access denied", "You do not have access to this content.");
        }
        if (item.Settings.Locked)
        {
            return ErrorPages.Render(403, "Content locked", string.IsNullOrEmpty(item.Settings.LockedMessage) ? "This content is locked." : item.Settings.LockedMessage);
        }
        if (item.BundleId is not { } bundleId)
        {
            return ErrorPages.Render(404, "Not deployed", "This content has not been deployed yet.");
        }
        if (item.AppMode == AppModes.Static)
        {
            return ServeFile(paths.BundleDirectory(guid, bundleId), path, item.Entrypoint);
        }
        if (AppModes.IsRendered(item.AppMode))
        {
            return ServeFile(paths.OutputDirectory(guid, bundleId), path, "index.html");
        }
        if (AppModes.IsInteractive(item.AppMode))
        {
            await ForwardAsync(context, item, path, user);
            return EmptyResult.Instance;
        }
        return ErrorPages.Render(501, "Not supported", $"Content of type '{item.AppMode}' cannot be served by this server.");
    }

    // ------------------------------------------------------------------ files

    private static IResult ServeFile(string root, string path, string? primary)
    {
        if (path.Length == 0 || path.EndsWith('/'))
        {
            path += path.Length == 0 && !string.IsNullOrEmpty(primary) ? primary : "index.html";
        }
        var full = Path.GetFullPath(Path.Combine(root, path));
        if (!full.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
        {
            return ErrorPages.Render(404, "Not found", "No such file in this content.");
        }
        if (Directory.Exists(full))
        {
            full = Path.Combine(full, "index.html");
        }
        // Served as root: no component below the content's root may be a link. Render output is sealed (links removed)
        // before it is served; this refuses one that got there any other way.
        if (HasLinkBelow(root, full) || !File.Exists(full))
        {
            return ErrorPages.Render(404, "Not found", "No such file in this content.");
        }
        if (!ContentTypes.TryGetContentType(full, out var type))
        {
            type = "application/octet-stream";
        }
        var info = new FileInfo(full);
        var etag = new Microsoft.Net.Http.Headers.EntityTagHeaderValue($"\"{info.LastWriteTimeUtc.Ticks:x}-{info.Length:x}\"");
        return TypedResults.PhysicalFile(full, type, lastModified: info.LastWriteTimeUtc, entityTag: etag, enableRangeProcessing: true);
    }

    private static bool HasLinkBelow(string root, string full)
    {
        for (var path = full; path.Length > root.Length; path = Path.GetDirectoryName(path)!)
        {
            if (new FileInfo(path).LinkTarget is not null)
            {
                return true;
            }
        }
        return false;
    }

    // ------------------------------------------------------------------ processes

    private async Task ForwardAsync(HttpContext context, ContentItem item, string path, UserInfo? caller)
    {
        var publicBase = $"{PublicBase(context)}/content/{item.Guid:D}";
        // The route value is decoded; forward the request's own path below the prefix, re-escaped, so that an
        // encoded '?', '#' or '%' reaches the app as the viewer sent it.
        context.Request.Path.StartsWithSegments($"/content/{context.Request.RouteValues["guid"]}", out var rest);
        var remainder = rest.HasValue ? rest.ToUriComponent() : "/";
        var pinnable = AppModes.IsSessionPinned(item.AppMode);
        var pinned = pinnable ? SessionPins.Read(context, secret, item.Guid) : null;
        // Seen at or above the load factor (the grain is told, and may start another process)…
        var saturated = new List<Guid>();
        // …and refused outright (at max_conns on its node, or gone): not tried again for this request.
        var excluded = new List<Guid>();
        var retried = false;
        for (var attempt = 0; attempt < 6; attempt++)
        {
            var (choice, failure) = pinned is { } pinnedProcess ? await ChoosePinnedAsync(item, pinnedProcess) : await ChooseProcessAsync(item, saturated, excluded);
            if (choice is not { } chosen)
            {
                if (pinned is not null)
                {
                    SessionPins.Clear(context, item.Guid);
                }
                // The log can hold paths and data of the app: only the item's owner and editors see it.
                var page = failure is { } f
                    ? ErrorPages.Render(f.Status, f.Title, f.Message, ContentAccess.CanEdit(item, caller) ? f.LogTail : null)
                    : ErrorPages.Render(503, "Too busy", "All processes of this content are at capacity; try again shortly.");
                await page.ExecuteAsync(context);
                return;
            }
            var (endpoint, local, policy, connection) = chosen;
            using (connection)
            {
                var pin = pinnable && pinned is null ? SessionPins.Issue(secret, item.Guid, endpoint.ProcessId) : null;
                var timeout = Timeout(policy.ConnectionTimeout);
                if (local is null)
                {
                    var outcome = await HopAsync(context, item, endpoint, remainder, publicBase, pin, timeout, pinned is not null ? int.MaxValue : policy.MaxConnsPerProcess);
                    switch (outcome)
                    {
                        case HopOutcome.Done:
                            return;
                        case HopOutcome.Saturated:
                            saturated.Add(endpoint.ProcessId);
                            excluded.Add(endpoint.ProcessId);
                            continue;
                        case HopOutcome.Gone when pinned is null && !retried:
                            retried = true;
                            cache.ForgetProcess(item.Guid, endpoint.ProcessId);
                            await ReportUnreachableAsync(item.Guid, endpoint.ProcessId);
                            saturated.Add(endpoint.ProcessId);
                            excluded.Add(endpoint.ProcessId);
                            continue;
                        default:
                            if (outcome == HopOutcome.Gone)
                            {
                                await ReportUnreachableAsync(item.Guid, endpoint.ProcessId);
                            }
                            await SessionEndedOrFailedAsync(context, item, pinned is not null);
                            return;
                    }
                }
                var goneBeforeSend = local.Handle.HasExited;
                var transformer = new ContentTransformer(remainder, publicBase, pin);
                var error = await forwarder.SendAsync(context, local.Destination, invoker.Invoker, new ForwarderRequestConfig { ActivityTimeout = timeout }, transformer);
                if (error == ForwarderError.None)
                {
                    return;
                }
                var failed = context.Features.Get<IForwarderErrorFeature>()?.Exception;
                LogForwardError(logger, item.Guid, error, failed?.Message);
                // Only a process that was already gone is retried: one that died under this request may have acted on
                // it, and sending it again would run it twice (and a request that kills its process would kill two).
                if (error == ForwarderError.Request && IsGone(failed) && !context.Response.HasStarted && !retried && pinned is null
                    && (goneBeforeSend || !await StoppedAsync(local)))
                {
                    // The process went away under us: forget it and try another (or a fresh one) once.
                    retried = true;
                    cache.ForgetProcess(item.Guid, local.Id);
                    excluded.Add(local.Id);
                    context.Response.Clear();
                    continue;
                }
                if (!context.Response.HasStarted)
                {
                    context.Response.Clear();
                    await AnswerFailedAsync(context, item, caller, local);
                }
                return;
            }
        }
        await ErrorPages.Render(503, "Too busy", "All processes of this content are at capacity; try again shortly.").ExecuteAsync(context);
    }

    /// <summary>The answer when the forward to a local process failed before a response started.</summary>
    private async Task AnswerFailedAsync(HttpContext context, ContentItem item, UserInfo? caller, SupervisedProcess local)
    {
        // A process that died under this request (a crash, its memory limit) is not one that failed to start.
        if (await StoppedAsync(local))
        {
            cache.ForgetProcess(item.Guid, local.Id);
            var reason = local.ExitReason is { } why && ContentAccess.CanEdit(item, caller) ? " (" + why + ")" : "";
            await ErrorPages.Render(502, "The application stopped", "The application stopped while handling this request" + reason + ". Reload to start it again.").ExecuteAsync(context);
        }
        else
        {
            await ErrorPages.Render(502, "Application error", "The application did not answer this request.").ExecuteAsync(context);
        }
    }

    private static Task SessionEndedOrFailedAsync(HttpContext context, ContentItem item, bool pinned)
    {
        if (pinned)
        {
            SessionPins.Clear(context, item.Guid);
            return SessionEnded().ExecuteAsync(context);
        }
        return ErrorPages.Render(502, "Application error", "The node running this application could not be reached; reload to try again.").ExecuteAsync(context);
    }

    private static IResult SessionEnded() => ErrorPages.Render(503, "Session ended",
        "The process that held your session has stopped (its server left, or it was restarted), and its state is gone. Reload the page to start a new session.");

    /// <summary>
    /// Forwards to a process on another node through that node's front end (the internal hop). That node counts the
    /// connection against the process's limit and answers "saturated" or "gone" in a header when it cannot take it;
    /// those answers are not passed on, so that this node can try another process.
    /// </summary>
    private async Task<HopOutcome> HopAsync(HttpContext context, ContentItem item, ProcessEndpoint endpoint, string remainder, string publicBase,
        string? pin, TimeSpan timeout, int limit)
    {
        if (string.IsNullOrEmpty(endpoint.InternalUrl) || nodes.IsDead(endpoint.Silo))
        {
            return HopOutcome.Gone;
        }
        var transformer = new ContentTransformer(remainder, publicBase, pin)
        {
            Hop = new InternalHop(secret.HopToken, limit, timeout),
        };
        var destination = $"{endpoint.InternalUrl}{InternalRoutes.ProcessPrefix}{endpoint.ProcessId:N}";
        var error = await forwarder.SendAsync(context, destination, invoker.Invoker, new ForwarderRequestConfig { ActivityTimeout = timeout }, transformer);
        if (transformer.HopRefusal is { } refusal)
        {
            context.Response.Clear();
            return refusal == InternalRoutes.Saturated ? HopOutcome.Saturated : HopOutcome.Gone;
        }
        if (error == ForwarderError.None)
        {
            return HopOutcome.Done;
        }
        var failed = context.Features.Get<IForwarderErrorFeature>()?.Exception;
        LogForwardError(logger, item.Guid, error, failed?.Message);
        if (context.Response.HasStarted)
        {
            return HopOutcome.Done;
        }
        context.Response.Clear();
        // The node did not take the connection at all: it is gone (or going); nothing was sent to the process. Other
        // requests should not try it either until the membership has its say.
        if (error == ForwarderError.Request && IsGone(failed))
        {
            nodes.MarkUnreachable(endpoint.Silo, TimeSpan.FromSeconds(5));
            return HopOutcome.Gone;
        }
        return HopOutcome.Failed;
    }

    private enum HopOutcome { Done, Saturated, Gone, Failed }

    /// <summary>
    /// Serves the internal hop on the node that runs the process: authenticated by the cluster secret (anything else is
    /// a plain 404), counted here against the limit the sending node passes, forwarded as the sending node shaped it.
    /// </summary>
    public async Task ServeHopAsync(HttpContext context, string processText)
    {
        if (!secret.IsHopToken(context.Request.Headers[InternalRoutes.TokenHeader]) || !Guid.TryParseExact(processText, "N", out var processId))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        if (!supervisor.TryGet(processId, out var process) || process.Handle.HasExited)
        {
            Refuse(context, InternalRoutes.Gone);
            return;
        }
        _ = int.TryParse(context.Request.Headers[InternalRoutes.LimitHeader], out var limit);
        _ = double.TryParse(context.Request.Headers[InternalRoutes.TimeoutHeader], System.Globalization.CultureInfo.InvariantCulture, out var seconds);
        if (!process.TryEnter(Math.Max(1, limit), time, out var scope))
        {
            Refuse(context, InternalRoutes.Saturated);
            return;
        }
        using (scope)
        using (remoteLoads.EnterInbound(processId))
        {
            context.Request.Path.StartsWithSegments($"{InternalRoutes.ProcessPrefix}{processText}", out var rest);
            var remainder = rest.HasValue ? rest.ToUriComponent() : "/";
            var config = new ForwarderRequestConfig { ActivityTimeout = seconds > 0 ? TimeSpan.FromSeconds(seconds) : TimeSpan.FromDays(1) };
            var error = await forwarder.SendAsync(context, process.Destination, invoker.Invoker, config, new HopTransformer(remainder));
            if (error == ForwarderError.None || context.Response.HasStarted)
            {
                return;
            }
            var failed = context.Features.Get<IForwarderErrorFeature>()?.Exception;
            context.Response.Clear();
            if (error == ForwarderError.Request && IsGone(failed) && process.Handle.HasExited)
            {
                Refuse(context, InternalRoutes.Gone);
                return;
            }
            if (await StoppedAsync(process))
            {
                await ErrorPages.Render(502, "The application stopped", "The application stopped while handling this request. Reload to start it again.").ExecuteAsync(context);
            }
            else
            {
                await ErrorPages.Render(502, "Application error", "The application did not answer this request.").ExecuteAsync(context);
            }
        }
    }

    private static void Refuse(HttpContext context, string why)
    {
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers[InternalRoutes.RefusalHeader] = why;
    }

    /// <summary>Whether the process has exited (or does within a moment: the forwarder can see the reset first).</summary>
    private async Task<bool> StoppedAsync(SupervisedProcess process)
    {
        try
        {
            await process.Handle.Exited.WaitAsync(TimeSpan.FromSeconds(2), time);
            // Answer only once the ContentGrain knows: the viewer's next request must find room for a new process.
            try
            {
                await process.Retired.WaitAsync(TimeSpan.FromSeconds(5), time);
            }
            catch (TimeoutException)
            {
            }
            return true;
        }
        catch (TimeoutException)
        {
            return false;
        }
    }

    /// <summary>The connect itself failed: the process (or its socket, or its node) is no longer there.</summary>
    private static bool IsGone(Exception? failure) =>
        failure?.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.AddressNotAvailable or SocketError.HostUnreachable or SocketError.NetworkUnreachable }
        || failure?.InnerException is SocketException { NativeErrorCode: 2 /* ENOENT: the socket file is gone */ };

    private static TimeSpan Timeout(TimeSpan configured) => configured <= TimeSpan.Zero ? TimeSpan.FromDays(1) : configured;

    private string PublicBase(HttpContext context) =>
        serverUrl.Configured ?? $"{context.Request.Scheme}://{context.Request.Host}{context.Request.PathBase}";

    /// <summary>
    /// A session pinned to a process goes to that process, wherever it runs, whatever its load; if it is gone, the
    /// session is over (never handed to another process, which does not have its state).
    /// </summary>
    private async Task<(Chosen? Choice, Failure? Failure)> ChoosePinnedAsync(ContentItem item, Guid processId)
    {
        var route = cache.GetRoute(item.Guid);
        var endpoint = route?.Processes.FirstOrDefault(p => p.ProcessId == processId);
        if (endpoint is null || route is null)
        {
            ProcessRoute fresh;
            try
            {
                fresh = await grains.GetGrain<IContentGrain>(item.Guid).GetRouteAsync();
            }
            catch (ContentNotFoundException)
            {
                return (null, new Failure(404, "Not found", "There is no content at this address.", []));
            }
            cache.SetRoute(item.Guid, fresh);
            route = cache.GetRoute(item.Guid);
            endpoint = fresh.All.FirstOrDefault(p => p.ProcessId == processId);
        }
        if (endpoint is null || route is null || nodes.IsDead(endpoint.Silo))
        {
            return (null, new Failure(503, "Session ended", "The process that held your session has stopped (its server left, or it was restarted), and its state is gone. Reload the page to start a new session.", []));
        }
        if (endpoint.Silo != node.Silo)
        {
            return (new Chosen(endpoint, null, route.Policy, remoteLoads.Enter(endpoint.ProcessId)), null);
        }
        if (supervisor.TryGet(endpoint.ProcessId, out var process) && process.TryEnter(int.MaxValue, time, out var scope))
        {
            return (new Chosen(endpoint, process, route.Policy, scope), null);
        }
        cache.ForgetProcess(item.Guid, endpoint.ProcessId);
        return (null, new Failure(503, "Session ended", "The process that held your session has stopped, and its state is gone. Reload the page to start a new session.", []));
    }

    /// <summary>
    /// The scheduler's routing step. Prefer a process on this node under the load factor, then the least-loaded known
    /// process elsewhere under it; otherwise ask
    /// the ContentGrain, which hands out a process the caller has not seen saturated or starts one while under
    /// max_processes; otherwise take the least-loaded process under max_conns_per_process; otherwise nothing
    /// (503). A local connection is only counted against a process with room, atomically; a process on another node
    /// is counted there, and this node only keeps an estimate to spread its own requests.
    /// </summary>
    private async Task<(Chosen? Choice, Failure? Failure)> ChooseProcessAsync(ContentItem item, List<Guid> saturated, List<Guid> excluded)
    {
        var route = cache.GetRoute(item.Guid);
        if (route is not null && TryTake(item.Guid, route.Processes, route.Policy, underLoadFactor: true, saturated) is { } cached)
        {
            return (cached, null);
        }
        // Each round either takes a process, learns one more saturated process, or ends: bounded by max_processes.
        for (var round = 0; round < 64; round++)
        {
            ProcessRoute fresh;
            try
            {
                fresh = await AcquireAsync(item.Guid, saturated);
            }
            catch (ContentNotFoundException)
            {
                return (null, new Failure(404, "Not found", "There is no content at this address.", []));
            }
            cache.SetRoute(item.Guid, fresh);
            var policy = fresh.Policy!;
            if (fresh.Error is not null)
            {
                if (fresh.CrashLoop)
                {
                    // Not a passing failure: tell viewers the app is down for a while rather than inviting reloads.
                    return (null, new Failure(503, "This application keeps crashing", fresh.Error, fresh.LogTail));
                }
                return (null, new Failure(502, "This application failed to start", fresh.Error, fresh.LogTail));
            }
            if (fresh.Process is { } assigned && !saturated.Contains(assigned.ProcessId))
            {
                // Any process with room will do, this node's own first: the grain does not know where the request came in.
                if (TryTake(item.Guid, fresh.All.Any(p => p.ProcessId == assigned.ProcessId) ? fresh.All : [assigned, .. fresh.All], policy, underLoadFactor: true, saturated) is { } taken)
                {
                    return (taken, null);
                }
                continue;
            }
            return (TryTake(item.Guid, fresh.All.Where(p => !excluded.Contains(p.ProcessId)).ToArray(), policy, underLoadFactor: false, []), null);
        }
        return (null, null);
    }

    private async Task ReportUnreachableAsync(Guid content, Guid process)
    {
        try
        {
            await grains.GetGrain<IContentGrain>(content).ReportUnreachableAsync(process);
        }
        catch (Exception e) when (e is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException or ContentNotFoundException)
        {
        }
    }

    /// <summary>
    /// Asks the ContentGrain for a process. A grain whose silo just died answers after the membership notices (a
    /// second or two with Connect's probe settings): the call is retried meanwhile, so viewers see a delay, not an error.
    /// </summary>
    private async Task<ProcessRoute> AcquireAsync(Guid content, List<Guid> saturated)
    {
        for (var attempt = 0; ; attempt++)
        {
            try
            {
                return await grains.GetGrain<IContentGrain>(content).AcquireProcessAsync(saturated);
            }
            catch (Exception e) when (attempt < 50 && e is SiloUnavailableException or OrleansMessageRejectionException or TimeoutException)
            {
                LogGrainRetry(logger, content, e.Message);
                await Task.Delay(TimeSpan.FromMilliseconds(200), time);
            }
        }
    }

    private Chosen? TryTake(Guid content, IReadOnlyList<ProcessEndpoint> processes, ScalingPolicy policy, bool underLoadFactor, List<Guid> saturated)
    {
        var limit = underLoadFactor ? Math.Max(1, (int)Math.Ceiling(policy.LoadFactor * policy.MaxConnsPerProcess)) : policy.MaxConnsPerProcess;
        limit = Math.Min(limit, policy.MaxConnsPerProcess);
        var candidates = new List<(ProcessEndpoint Endpoint, SupervisedProcess? Local, int Load)>();
        foreach (var endpoint in processes)
        {
            if (saturated.Contains(endpoint.ProcessId))
            {
                continue;
            }
            if (nodes.IsDead(endpoint.Silo))
            {
                cache.ForgetProcess(content, endpoint.ProcessId);
                saturated.Add(endpoint.ProcessId);
                continue;
            }
            // New sessions go to nodes that are not draining while there is a choice.
            if (underLoadFactor && (endpoint.Silo == node.Silo ? node.Draining : nodes.IsDraining(endpoint.Silo)))
            {
                saturated.Add(endpoint.ProcessId);
                continue;
            }
            if (endpoint.Silo != node.Silo)
            {
                candidates.Add((endpoint, null, remoteLoads.Get(endpoint.ProcessId)));
                continue;
            }
            if (!supervisor.TryGet(endpoint.ProcessId, out var process))
            {
                // Gone (idle stop, exit).
                cache.ForgetProcess(content, endpoint.ProcessId);
                saturated.Add(endpoint.ProcessId);
                continue;
            }
            // Compared with remote processes by this node's own requests only (see RemoteLoads); the limit below still
            // counts every connection, whichever node it came through.
            candidates.Add((endpoint, process, Math.Max(0, process.Connections - remoteLoads.Inbound(process.Id))));
        }
        // This node's own processes first, while they have room under the limit: a hop costs a second proxy pass on
        // another node. Processes elsewhere take the overflow, least loaded first.
        foreach (var (endpoint, local, load) in candidates.OrderBy(c => c.Local is null ? 1 : 0).ThenBy(c => c.Load))
        {
            if (local is null)
            {
                if (load < limit)
                {
                    return new Chosen(endpoint, null, policy, remoteLoads.Enter(endpoint.ProcessId));
                }
            }
            else if (local.TryEnter(limit, time, out var scope))
            {
                return new Chosen(endpoint, local, policy, scope);
            }
            saturated.Add(endpoint.ProcessId);
        }
        return null;
    }

    private readonly record struct Chosen(ProcessEndpoint Endpoint, SupervisedProcess? Local, ScalingPolicy Policy, IDisposable Connection);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Forwarding to content {Content} failed: {Error} {Detail}")]
    private static partial void LogForwardError(ILogger logger, Guid content, ForwarderError error, string? detail);

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content}: its grain is not reachable yet ({Error}); retrying")]
    private static partial void LogGrainRetry(ILogger logger, Guid content, string error);

    private sealed record Failure(int Status, string Title, string Message, IReadOnlyList<string> LogTail);

    private sealed class EmptyResult : IResult
    {
        public static readonly EmptyResult Instance = new();
        public Task ExecuteAsync(HttpContext httpContext) => Task.CompletedTask;
    }
}

/// <summary>The one <see cref="HttpMessageInvoker"/> the front end forwards with (pooled connections to processes).</summary>
public sealed class ForwarderInvoker(ProcessSupervisor supervisor) : IDisposable
{
    public HttpMessageInvoker Invoker { get; } = new(new SocketsHttpHandler
    {
        UseProxy = false,
        AllowAutoRedirect = false,
        AutomaticDecompression = System.Net.DecompressionMethods.None,
        UseCookies = false,
        ConnectTimeout = TimeSpan.FromSeconds(5),
        EnableMultipleHttp2Connections = true,
        ActivityHeadersPropagator = null,
        // Sandboxed processes listen on Unix sockets: the destination host names the process, not a network address.
        ConnectCallback = (context, ct) => UnixSocketHost.ConnectAsync(supervisor, context.DnsEndPoint.Host, context.DnsEndPoint.Port, ct),
    });

    public void Dispose() => Invoker.Dispose();
}

public static class ProxyServiceCollectionExtensions
{
    public static IServiceCollection AddContentFrontEnd(this IServiceCollection services)
    {
        services.AddHttpForwarder();
        services.AddSingleton<ForwarderInvoker>();
        services.AddSingleton<ContentCatalogCache>();
        services.AddSingleton<RemoteLoads>();
        services.AddSingleton<ContentFrontEnd>();
        return services;
    }
}
