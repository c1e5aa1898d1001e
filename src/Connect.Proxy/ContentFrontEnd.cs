using System.Net.Sockets;
using Connect.Abstractions;
using Connect.Core.Content;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data.Security;
using Connect.Runtime.Supervision;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
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
    TimeProvider time,
    ILogger<ContentFrontEnd> logger)
{
    private static readonly FileExtensionContentTypeProvider ContentTypes = new();

    public static void Map(IEndpointRouteBuilder app)
    {
        app.Map("/content/{guid}/{**path}", Handle);
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
        for (var attempt = 0; attempt < 2; attempt++)
        {
            var (choice, failure) = await ChooseProcessAsync(item);
            if (choice is not { } chosen)
            {
                // The log can hold paths and data of the app: only the item's owner and editors see it.
                var page = failure is { } f
                    ? ErrorPages.Render(f.Status, f.Title, f.Message, ContentAccess.CanEdit(item, caller) ? f.LogTail : null)
                    : ErrorPages.Render(503, "Too busy", "All processes of this content are at capacity; try again shortly.");
                await page.ExecuteAsync(context);
                return;
            }
            var (process, policy, connection) = chosen;
            using (connection)
            {
                var config = new ForwarderRequestConfig { ActivityTimeout = Timeout(policy.ConnectionTimeout) };
                var goneBeforeSend = process.Handle.HasExited;
                var error = await forwarder.SendAsync(context, process.Destination, invoker.Invoker, config,
                    new ContentTransformer(remainder, publicBase));
                if (error == ForwarderError.None)
                {
                    return;
                }
                var failed = context.Features.Get<IForwarderErrorFeature>()?.Exception;
                LogForwardError(logger, item.Guid, error, failed?.Message);
                // Only a process that was already gone is retried: one that died under this request may have acted on
                // it, and sending it again would run it twice (and a request that kills its process would kill two).
                if (error == ForwarderError.Request && IsGone(failed) && !context.Response.HasStarted && attempt == 0
                    && (goneBeforeSend || !await StoppedAsync(process)))
                {
                    // The process went away under us: forget it and try another (or a fresh one) once.
                    cache.ForgetProcess(item.Guid, process.Id);
                    context.Response.Clear();
                    continue;
                }
                if (!context.Response.HasStarted)
                {
                    context.Response.Clear();
                    // A process that died under this request (a crash, its memory limit) is not one that failed to start.
                    if (await StoppedAsync(process))
                    {
                        cache.ForgetProcess(item.Guid, process.Id);
                        var reason = process.ExitReason is { } why && ContentAccess.CanEdit(item, caller) ? " (" + why + ")" : "";
                        await ErrorPages.Render(502, "The application stopped", "The application stopped while handling this request" + reason + ". Reload to start it again.").ExecuteAsync(context);
                    }
                    else
                    {
                        await ErrorPages.Render(502, "Application error", "The application did not answer this request.").ExecuteAsync(context);
                    }
                }
                return;
            }
        }
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

    /// <summary>The connect itself failed: the process (or its socket) is no longer there.</summary>
    private static bool IsGone(Exception? failure) =>
        failure?.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionRefused or SocketError.AddressNotAvailable }
        || failure?.InnerException is SocketException { NativeErrorCode: 2 /* ENOENT: the socket file is gone */ };

    private static TimeSpan Timeout(TimeSpan configured) => configured <= TimeSpan.Zero ? TimeSpan.FromDays(1) : configured;

    private string PublicBase(HttpContext context) =>
        serverUrl.Configured ?? $"{context.Request.Scheme}://{context.Request.Host}{context.Request.PathBase}";

    /// <summary>
    /// The scheduler's routing step. Prefer the least-loaded known process under the load factor; otherwise ask
    /// the ContentGrain, which hands out a process the caller has not seen saturated or starts one while under
    /// max_processes; otherwise take the least-loaded process under max_conns_per_process; otherwise nothing
    /// (503). A connection is only counted against a process with room, atomically.
    /// </summary>
    private async Task<(Chosen? Choice, Failure? Failure)> ChooseProcessAsync(ContentItem item)
    {
        var saturated = new List<Guid>();
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
                fresh = await grains.GetGrain<IContentGrain>(item.Guid).AcquireProcessAsync(saturated);
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
                if (TryTake(item.Guid, [assigned], policy, underLoadFactor: true, saturated) is { } taken)
                {
                    return (taken, null);
                }
                continue;
            }
            return (TryTake(item.Guid, fresh.All, policy, underLoadFactor: false, []), null);
        }
        return (null, null);
    }

    private Chosen? TryTake(Guid content, IReadOnlyList<ProcessEndpoint> processes, ScalingPolicy policy, bool underLoadFactor, List<Guid> saturated)
    {
        var limit = underLoadFactor ? Math.Max(1, (int)Math.Ceiling(policy.LoadFactor * policy.MaxConnsPerProcess)) : policy.MaxConnsPerProcess;
        var candidates = new List<SupervisedProcess>();
        foreach (var endpoint in processes)
        {
            if (!supervisor.TryGet(endpoint.ProcessId, out var process))
            {
                // Gone (idle stop, exit) or on another node; cross-node forwarding arrives with cluster mode.
                cache.ForgetProcess(content, endpoint.ProcessId);
                saturated.Add(endpoint.ProcessId);
                continue;
            }
            candidates.Add(process);
        }
        foreach (var process in candidates.OrderBy(p => p.Connections))
        {
            if (process.TryEnter(Math.Min(limit, policy.MaxConnsPerProcess), time, out var scope))
            {
                return new Chosen(process, policy, scope);
            }
            saturated.Add(process.Id);
        }
        return null;
    }

    private readonly record struct Chosen(SupervisedProcess Process, ScalingPolicy Policy, SupervisedProcess.ConnectionScope Connection);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Forwarding to content {Content} failed: {Error} {Detail}")]
    private static partial void LogForwardError(ILogger logger, Guid content, ForwarderError error, string? detail);

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
        services.AddSingleton<ContentFrontEnd>();
        return services;
    }
}
