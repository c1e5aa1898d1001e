using System.Text.Json.Nodes;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Core.Content;
using Connect.Core.Model;
using Connect.Runtime.Python;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Connect.Api.Server;

/// <summary><c>/__api__/server_settings</c> and <c>/__api__/v1/server_settings/*</c> (spec §1.9, §3.6).</summary>
public static class ServerSettingsApi
{
    /// <summary>
    /// The Connect version reported to clients. Below 2025.06.0 so rsconnect deploys in one step without drafts
    /// (§1.4), and at or above 2024.01.0 so it does not pin starlette for Shiny.
    /// </summary>
    public const string CompatibleVersion = "2024.08.0";

    public static RouteGroupBuilder MapServerSettingsApi(this RouteGroupBuilder api)
    {
        api.MapGet("/server_settings", Settings);
        api.MapGet("/server_settings/scheduler", (IOptions<SchedulerDefaults> options) => Scheduler(options.Value));
        api.MapGet("/server_settings/scheduler/{appMode}", SchedulerFor);
        api.MapGet("/server_settings/applications", (HttpContext _) => TypedResults.Json(new JsonObject
        {
            ["access_types"] = new JsonArray(AccessTypes.All, AccessTypes.LoggedIn, AccessTypes.Acl),
            ["run_as"] = Environment.UserName,
            ["run_as_group"] = "",
            ["run_as_current_user"] = false,
        }, ApiJson.Options));
        api.MapGet("/v1/server_settings/python", Python).AddEndpointFilter(ApiAuth.RequireUser);
        // R and Quarto are not supported yet: an empty list (not a 404) because Publisher aborts a deploy when
        // either call fails, even for Python content. No /nodejs route: Publisher tolerates its 404.
        api.MapGet("/v1/server_settings/r", () => TypedResults.Json(new JsonObject { ["installations"] = new JsonArray() }, ApiJson.Options))
            .AddEndpointFilter(ApiAuth.RequireUser);
        api.MapGet("/v1/server_settings/quarto", () => TypedResults.Json(new JsonObject { ["installations"] = new JsonArray() }, ApiJson.Options))
            .AddEndpointFilter(ApiAuth.RequireUser);
        return api;
    }

    private static IResult Settings(HttpContext context) => TypedResults.Json(new JsonObject
    {
        ["hostname"] = Environment.MachineName,
        ["version"] = CompatibleVersion,
        ["build"] = typeof(ServerSettingsApi).Assembly.GetName().Version?.ToString(),
        ["about"] = "Connect, an open-source platform for data-science content",
        ["authentication"] = new JsonObject { ["handles_credentials"] = false, ["name"] = "api-key", ["notice"] = "" },
        // Publisher refuses API content (Flask, FastAPI, Plumber) unless allow-apis is true, and refuses
        // run_as_current_user unless current-user-execution is: this server hosts APIs and has no PAM sessions.
        ["license"] = new JsonObject
        {
            ["ok"] = true,
            ["allow-apis"] = true,
            ["current-user-execution"] = false,
            ["enable-launcher"] = false,
            ["oauth-integrations"] = false,
        },
        ["runtimes"] = new JsonArray("python"),
        ["git_enabled"] = false,
        ["git_available"] = false,
        // "native": content runs on this host; Publisher rejects Kubernetes settings unless this says launcher-kubernetes.
        ["execution_type"] = "native",
        ["enable_runtime_constraints"] = false,
        ["enable_image_management"] = false,
        ["default_image_selection_enabled"] = false,
        ["default_environment_management_selection"] = true,
        ["default_py_environment_management"] = true,
        ["default_r_environment_management"] = false,
        ["oauth_integrations_enabled"] = false,
    }, ApiJson.Options);

    /// <summary>Defaults for one app mode; an unknown mode is a 404 as in Connect, so a typo is not mistaken for "no limits".</summary>
    private static IResult SchedulerFor(IOptions<SchedulerDefaults> options, string appMode) =>
        AppModes.IsKnown(appMode) && appMode != AppModes.Unknown
            ? Scheduler(options.Value)
            : ApiErrors.Error(StatusCodes.Status404NotFound, ApiErrors.NotFound, $"The app mode '{appMode}' does not exist.");

    /// <summary>
    /// The server's scheduler defaults and the limits publishers may set. Every app mode shares one set of defaults here.
    /// Resource fields are 0, which Publisher reads as "no limit": this server applies no per-content CPU, memory or GPU constraints.
    /// </summary>
    private static IResult Scheduler(SchedulerDefaults s) => TypedResults.Json(new JsonObject
    {
        ["min_processes"] = s.MinProcesses,
        ["max_processes"] = s.MaxProcesses,
        ["max_conns_per_process"] = s.MaxConnsPerProcess,
        ["load_factor"] = s.LoadFactor,
        ["init_timeout"] = s.InitTimeout,
        ["idle_timeout"] = s.IdleTimeout,
        ["connection_timeout"] = s.ConnectionTimeout,
        ["read_timeout"] = s.ReadTimeout,
        // min_processes is clamped to max_processes, whose ceiling is MaxProcessesLimit; so is min's.
        ["min_processes_limit"] = s.MaxProcessesLimit,
        ["max_processes_limit"] = s.MaxProcessesLimit,
        ["cpu_request"] = 0.0,
        ["max_cpu_request"] = 0.0,
        ["cpu_limit"] = 0.0,
        ["max_cpu_limit"] = 0.0,
        ["memory_request"] = 0,
        ["max_memory_request"] = 0,
        ["memory_limit"] = 0,
        ["max_memory_limit"] = 0,
        ["amd_gpu_limit"] = 0,
        ["max_amd_gpu_limit"] = 0,
        ["nvidia_gpu_limit"] = 0,
        ["max_nvidia_gpu_limit"] = 0,
    }, ApiJson.Options);

    private static async Task<IResult> Python(HttpContext context, PythonInstallations pythons)
    {
        var found = await pythons.GetAsync(context.RequestAborted);
        return TypedResults.Json(new JsonObject
        {
            ["installations"] = new JsonArray(found.Select(p => (JsonNode)new JsonObject
            {
                ["version"] = p.Version,
                ["cluster_name"] = "Local",
                ["image_name"] = "Local",
            }).ToArray()),
            ["api_enabled"] = true,
        }, ApiJson.Options);
    }
}
