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
    SecretBox secrets,
    ServerUrl serverUrl,
    SandboxOptions sandbox,
    Microsoft.Extensions.Options.IOptions<ConnectOptions> options,
    TimeProvider time,
    ILogger<ContentProcessHost> logger)
{
    public string NodeName { get; } = Environment.MachineName;

    public async Task<ProcessStartResult> StartAsync(Guid processId, ProcessStartRequest request, string silo, CancellationToken ct)
    {
        var plan = await LaunchPlan.ReadAsync(paths.LaunchPlan(request.ContentGuid, request.BundleId), ct);
        if (plan is null)
        {
            return Failed($"bundle {request.BundleId} has not been deployed on this server");
        }
        var port = LoopbackPorts.GetFreePort();
        var environment = await BuildEnvironmentAsync(request, ct);
        var rootPath = $"{serverUrl.PathBase}/content/{request.ContentGuid:D}";
        var bundleDir = paths.BundleDirectory(request.ContentGuid, request.BundleId);
        var pythonEnv = new PythonEnvironment(plan.EnvironmentDirectory ?? "", plan.PythonPath ?? "", "");
        LaunchSpec spec;
        switch (plan.AppMode)
        {
            case AppModes.PythonApi:
                spec = PythonLaunch.ForWsgi(pythonEnv, bundleDir, plan.Entrypoint ?? "app", port, rootPath, environment, paths.Launchers);
                break;
            case AppModes.PythonFastApi:
                spec = PythonLaunch.ForAsgi(pythonEnv, bundleDir, plan.Entrypoint ?? "app", port, rootPath, environment, paths.Launchers);
                break;
            default:
                return Failed($"app mode '{plan.AppMode}' does not run as a process");
        }
        if (sandbox.Active)
        {
            spec = Bubblewrap.Wrap(spec, PythonSandbox.For(bundleDir, pythonEnv.Directory, paths.Launchers), sandbox.Bubblewrap);
        }
        var logFile = paths.JobLog(request.ContentGuid, request.JobKey);
        Directory.CreateDirectory(Path.GetDirectoryName(logFile)!);
        spec = spec with { LogFile = logFile };

        await store.AddJobAsync(new NewJob(request.JobKey, request.ContentGuid, request.BundleId, null, AppModes.JobTag(plan.AppMode),
            time.GetUtcNow(), NodeName, logFile), ct);
        try
        {
            var process = await supervisor.StartAsync(processId, request.ContentGuid, request.JobKey, spec, port, request.InitTimeout, request.IdleTimeout, ct);
            var pid = sandbox.Active ? Bubblewrap.ApplicationPid(process.Handle.Pid) : process.Handle.Pid;
            await store.SetJobPidAsync(request.JobKey, pid, ct);
            LogStarted(logger, request.ContentGuid, pid, port);
            return new ProcessStartResult { Started = true, Silo = silo, Port = port, Pid = pid };
        }
        catch (ProcessStartException e)
        {
            await store.FinishJobAsync(request.JobKey, null, time.GetUtcNow(), CancellationToken.None);
            await store.DeleteApiKeysNamedAsync(ApiKeys.ProcessKeyName(request.JobKey), CancellationToken.None);
            return Failed(e.Message, e.LogTail);
        }
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

    [LoggerMessage(Level = LogLevel.Information, Message = "Content {Content} process pid {Pid} ready on port {Port}")]
    private static partial void LogStarted(ILogger logger, Guid content, int pid, int port);
}
