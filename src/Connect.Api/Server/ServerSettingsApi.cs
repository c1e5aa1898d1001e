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
        api.MapGet("/server_settings/scheduler", Scheduler);
        api.MapGet("/server_settings/scheduler/{appMode}", Scheduler);
        api.MapGet("/server_settings/applications", (HttpContext _) => TypedResults.Json(new JsonObject
        {
            ["access_types"] = new JsonArray(AccessTypes.All, AccessTypes.LoggedIn, AccessTypes.Acl),
            ["run_as"] = Environment.UserName,
            ["run_as_group"] = "",
            ["run_as_current_user"] = false,
        }, ApiJson.Options));
        api.MapGet("/v1/server_settings/python", Python).AddEndpointFilter(ApiAuth.RequireUser);
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
        ["license"] = new JsonObject { ["ok"] = true },
        ["runtimes"] = new JsonArray("Python"),
        ["git_enabled"] = false,
        ["execution_type"] = "native",
        ["enable_runtime_constraints"] = false,
        ["default_py_environment_management"] = true,
        ["default_r_environment_management"] = false,
    }, ApiJson.Options);

    private static IResult Scheduler(IOptions<SchedulerDefaults> options, string? appMode)
    {
        var s = options.Value;
        return TypedResults.Json(new JsonObject
        {
            ["min_processes"] = s.MinProcesses,
            ["max_processes"] = s.MaxProcesses,
            ["max_conns_per_process"] = s.MaxConnsPerProcess,
            ["load_factor"] = s.LoadFactor,
            ["init_timeout"] = s.InitTimeout,
            ["idle_timeout"] = s.IdleTimeout,
            ["connection_timeout"] = s.ConnectionTimeout,
            ["read_timeout"] = s.ReadTimeout,
            ["min_processes_limit"] = s.MaxProcessesLimit,
            ["max_processes_limit"] = s.MaxProcessesLimit,
        }, ApiJson.Options);
    }

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
