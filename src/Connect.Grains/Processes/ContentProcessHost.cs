using Connect.Abstractions;
using Connect.Core.Content;
using Connect.Core.Hosting;
using Connect.Data;
using Connect.Data.Security;
using Connect.Grains.Deployment;
using Connect.Runtime.Processes;
using Connect.Runtime.Python;
using Connect.Runtime.Sandbox;
using Connect.Runtime.Supervision;
using Microsoft.Extensions.Logging;

namespace Connect.Grains.Processes;

/// <summary>
/// Node-local: turns a deployed bundle's launch plan into a running, supervised process with the environment
/// Connect promises content (CONNECT_SERVER, CONNECT_CONTENT_GUID, POSIT_PRODUCT, the item's own variables).
/// </summary>
public sealed partial class ContentProcessHost(
    DataPaths paths,
    ProcessSupervisor supervisor,
    ICatalogStore store,
    ApiKeyCache keys,
    SecretBox secrets,
    ServerUrl serverUrl,
    ContentSandbox sandbox,
    ApplicationsOptions applications,
    Microsoft.Extensions.Options.IOptions<ConnectOptions> options,
    LocalNode node,
    TimeProvider time,
    ILogger<ContentProcessHost> logger) : IProcessHost
{
    public string NodeName => node.Name;

    public int Count => supervisor.Count;

    public Task StopAsync(Guid processId) => supervisor.StopAsync(processId);

    public IReadOnlyList<HostedProcess> ListProcesses(Guid content) => supervisor.Processes
        .Where(p => p.ContentGuid == content && !p.StopRequested && !p.Handle.HasExited)
        .Select(p => new HostedProcess(p.Id, p.JobKey, p.Port, p.BundleId))
        .ToArray();

    public async Task<ProcessStartResult> StartAsync(Guid processId, ProcessStartRequest request, string silo, CancellationToken ct)
    {
        var plan = await LaunchPlan.ReadAsync(paths.LaunchPlan(request.ContentGuid, request.BundleId), ct);
        if (plan is null)
        {
            return Failed($"bundle {request.BundleId} has not been deployed on this server");
        }
        try
        {
            sandbox.EnsureAvailable();
        }
        catch (SandboxUnavailableException e)
        {
            return Failed(e.Message);
        }
        var environment = await BuildEnvironmentAsync(request, ct);
        var rootPath = $"{serverUrl.PathBase}/content/{request.ContentGuid:D}";
        var bundleDir = paths.BundleDirectory(request.ContentGuid, request.BundleId);
        var pythonEnv = new PythonEnvironment(plan.EnvironmentDirectory ?? "", plan.PythonPath ?? "", "");

        // The process listens on a Unix socket in a directory of its own: mounted at /run/connect inside its sandbox
        // and seen by nothing else but this node's front end.
        var socketDirectory = paths.ProcessSocketDirectory(request.JobKey);
        PrepareDirectory(socketDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var listen = ListenAddress.Unix(Path.Combine(socketDirectory, SocketName));
        var sandboxed = sandbox.Mode != SandboxMode.Disabled;
        var socketInside = sandboxed ? SandboxSocketDirectory + "/" + SocketName : null;
        var work = paths.ContentWork(request.ContentGuid);
        PrepareDirectory(work, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        LaunchSpec spec;
        switch (plan.AppMode)
        {
            case AppModes.PythonApi:
                spec = PythonLaunch.ForWsgi(pythonEnv, bundleDir, plan.Entrypoint ?? "app", listen, rootPath, environment, paths.Launchers, socketInside);
                break;
            // Shiny for Python apps are ASGI applications (Starlette underneath), served like FastAPI.
            case AppModes.PythonFastApi or AppModes.PythonShiny:
                spec = PythonLaunch.ForAsgi(pythonEnv, bundleDir, plan.Entrypoint ?? "app", listen, rootPath, environment, paths.Launchers, socketInside);
                break;
            default:
                return Failed($"app mode '{plan.AppMode}' does not run as a process");
        }
        var logFile = paths.JobLog(request.ContentGuid, request.JobKey);
        Directory.CreateDirectory(Path.GetDirectoryName(logFile)!);
        spec = spec with { LogFile = logFile };
        var profile = new SandboxProfile
        {
            ReadOnly = [bundleDir, paths.Launchers, pythonEnv.Directory, .. (plan.PythonPrefix is { } prefix ? new[] { prefix } : [])],
            Writable = [work],
            Mounts = [new SandboxMount(socketDirectory, SandboxSocketDirectory, Writable: true)],
            Home = work,
            Limits = ResourceLimiter.ResourceLimitsFor(null, null, applications),
        };
        SandboxedLaunch launch;
        try
        {
            launch = sandbox.Prepare(spec, profile, request.JobKey).RemoveAfterwards(socketDirectory);
        }
        catch (SandboxUnavailableException e)
        {
            return Failed(e.Message);
        }

        await store.AddJobAsync(new NewJob(request.JobKey, request.ContentGuid, request.BundleId, null, AppModes.JobTag(plan.AppMode),
            time.GetUtcNow(), NodeName, logFile), ct);
        try
        {
            var process = await supervisor.StartAsync(processId, request.ContentGuid, request.JobKey, launch, listen, request.InitTimeout, request.IdleTimeout, ct, request.BundleId);
            if (sandboxed && !LockSocket(socketDirectory, listen.SocketPath!))
            {
                // The app put something else than its own socket there (a link to a root-only socket, say): the front
                // end, which connects as root, must never be pointed at it.
                await supervisor.StopAsync(processId);
                throw new ProcessStartException("the application's socket was replaced by a link or another kind of file", []);
            }
            var pid = sandboxed ? Bubblewrap.ApplicationPid(process.Handle.Pid) : process.Handle.Pid;
            await store.SetJobPidAsync(request.JobKey, pid, ct);
            LogStarted(logger, request.ContentGuid, pid, listen.ToString());
            return new ProcessStartResult { Started = true, Silo = silo, Port = process.Port, Pid = pid, Node = node.Name, InternalUrl = node.InternalUrl };
        }
        catch (ProcessStartException e)
        {
            await store.FinishJobAsync(request.JobKey, null, time.GetUtcNow(), CancellationToken.None);
            await store.DeleteApiKeysNamedAsync(ApiKeys.ProcessKeyName(request.JobKey), CancellationToken.None);
            keys.InvalidateAll();
            return Failed(e.Message, e.LogTail);
        }
    }

    private const string SocketName = "app.sock";
    private const string SandboxSocketDirectory = "/run/connect";

    /// <summary>
    /// Once the app listens, its socket directory becomes root's again (0755): the app keeps its socket but can no
    /// longer rename, replace or add entries there. Then the socket must be a socket, not a link.
    /// </summary>
    private static bool LockSocket(string directory, string socket)
    {
        try
        {
            ContentOutput.TakeDirectory(directory, takeOwnership: RunAsUser.ServerIsRoot);
            return ContentOutput.IsSocket(socket);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }

    /// <summary>A directory the sandboxed process writes: made by the server, then handed to the run-as user.</summary>
    private void PrepareDirectory(string directory, UnixFileMode mode)
    {
        Directory.CreateDirectory(directory);
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(directory, mode);
        }
        sandbox.GiveToContent(directory);
    }

    private async Task<Dictionary<string, string>> BuildEnvironmentAsync(ProcessStartRequest request, CancellationToken ct)
    {
        var env = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (name, sealedValue) in await store.GetEnvironmentAsync(request.ContentGuid, ct))
        {
            env[name] = secrets.Open(sealedValue);
        }
        // Connect's own variables win over the publisher's: content relies on them being true.
        env["CONNECT_SERVER"] = serverUrl.Value + "/";
        env["CONNECT_CONTENT_GUID"] = request.ContentGuid.ToString("D");
        env["CONNECT_CONTENT_JOB_KEY"] = request.JobKey;
        if (options.Value.ProcessApiKeys && await store.GetContentAsync(request.ContentGuid, ct) is { } item)
        {
            var key = ApiKeys.Generate();
            await store.CreateApiKeyAsync(item.Settings.OwnerGuid, ApiKeys.ProcessKeyName(request.JobKey), ApiKeys.Hash(key), item.Guid, ct);
            env["CONNECT_API_KEY"] = key;
        }
        env["POSIT_PRODUCT"] = "CONNECT";
        env["RSTUDIO_PRODUCT"] = "CONNECT";
        return env;
    }

    private static ProcessStartResult Failed(string error, IReadOnlyList<string>? tail = null) =>
        new() { Started = false, Error = error, LogTail = tail ?? [] };

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content} process pid {Pid} ready on {Listen}")]
    private static partial void LogStarted(ILogger logger, Guid content, int pid, string listen);
}
