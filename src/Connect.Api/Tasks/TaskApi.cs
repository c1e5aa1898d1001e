using System.Text.Json.Nodes;
using Connect.Abstractions;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Core.Content;
using Connect.Data.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Connect.Api.Tasks;

/// <summary><c>GET /__api__/v1/tasks/{id}?first=&amp;wait=</c>: long-polled task output (spec §1.8, §3.2).</summary>
public static class TaskApi
{
    /// <summary>Longest a poll waits for news; clients ask for 1 s, and a grain call must stay well inside its timeout.</summary>
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(10);

    public static RouteGroupBuilder MapTaskApi(this RouteGroupBuilder v1)
    {
        v1.MapGet("/tasks/{id}", Get).AddEndpointFilter(ApiAuth.RequireUser);
        return v1;
    }

    private static async Task<IResult> Get(HttpContext context, IGrainFactory grains, string id, int? first, double? wait)
    {
        var caller = await ApiAuth.UserAsync(context);
        var scope = (await Caller.GetAsync(context)).ScopedContent;
        var waitFor = TimeSpan.FromSeconds(wait is { } w && double.IsFinite(w) ? Math.Clamp(w, 0, MaxWait.TotalSeconds) : 0);
        var snapshot = await grains.GetGrain<ITaskGrain>(id).PollAsync(first, waitFor);
        // A scoped key sees its own item's tasks only; a task of no item (none today) is not its business either.
        if (snapshot is null || (snapshot.UserGuid != caller.Guid && !caller.IsAdmin)
            || (scope is not null && (snapshot.ContentGuid is not { } content || !ContentAccess.InScope(scope, content))))
        {
            return ApiErrors.NotFoundError("task");
        }
        var output = new JsonArray(snapshot.Output.Select(l => (JsonNode?)JsonValue.Create(l)).ToArray());
        return TypedResults.Json(new JsonObject
        {
            ["id"] = snapshot.Id,
            ["output"] = output,
            ["result"] = null,
            ["finished"] = snapshot.Finished,
            ["code"] = snapshot.Code,
            ["error"] = snapshot.Error,
            ["last"] = snapshot.Last,
            // The legacy task shape, still read by older clients.
            ["user_id"] = 0,
            ["status"] = output.DeepClone(),
            ["last_status"] = snapshot.Last,
        }, ApiJson.Options);
    }
}
