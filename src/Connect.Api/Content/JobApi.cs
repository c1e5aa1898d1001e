using System.Text.Json.Nodes;
using Connect.Abstractions;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Core.Model;
using Connect.Data;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Connect.Api.Content;

/// <summary><c>/__api__/v1/content/{guid}/jobs</c> (spec §3.5): the item's processes and their history.</summary>
public static class JobApi
{
    public static RouteGroupBuilder MapJobApi(this RouteGroupBuilder v1)
    {
        var jobs = v1.MapGroup("/content/{guid}/jobs").AddEndpointFilter(ApiAuth.RequireUser);
        jobs.MapGet("", List);
        jobs.MapGet("/{key}", Get);
        jobs.MapGet("/{key}/log", Log);
        jobs.MapDelete("/{key}", Delete);
        return v1;
    }

    internal static JsonObject ToJson(JobInfo j, ContentItem item) => new()
    {
        ["id"] = ApiJson.Id(j.Id),
        ["ppid"] = null,
        ["pid"] = j.Pid?.ToString(System.Globalization.CultureInfo.InvariantCulture),
        ["key"] = j.Key,
        ["remote_id"] = null,
        ["app_id"] = ApiJson.Id(item.Id),
        ["app_guid"] = item.Guid.ToString("D"),
        ["content_id"] = ApiJson.Id(item.Id),
        ["content_guid"] = item.Guid.ToString("D"),
        ["variant_id"] = "0",
        ["bundle_id"] = j.BundleId is { } b ? ApiJson.Id(b) : null,
        ["start_time"] = ApiJson.Time(j.StartTime),
        ["end_time"] = ApiJson.Time(j.EndTime),
        ["last_heartbeat_time"] = ApiJson.Time(j.EndTime ?? j.StartTime),
        ["queued_time"] = null,
        ["queue_name"] = null,
        ["tag"] = j.Tag,
        ["exit_code"] = j.ExitCode,
        ["status"] = j.Status,
        ["hostname"] = j.Hostname,
        ["cluster"] = null,
        ["image"] = null,
        ["run_as"] = Environment.UserName,
    };

    private static async Task<IResult> List(HttpContext context, ICatalogStore store, string guid)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        var jobs = await store.ListJobsAsync(item!.Guid, context.RequestAborted);
        return TypedResults.Json(jobs.OrderByDescending(j => j.Id).Select(j => ToJson(j, item)).ToArray(), ApiJson.Options);
    }

    private static async Task<(ContentItem? Item, JobInfo? Job, IResult? Error)> LoadJobAsync(HttpContext context, ICatalogStore store, string guid, string key)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return (null, null, error);
        }
        var job = await store.GetJobAsync(item!.Guid, key, context.RequestAborted);
        return job is null ? (null, null, ApiErrors.NotFoundError("job")) : (item, job, null);
    }

    private static async Task<IResult> Get(HttpContext context, ICatalogStore store, string guid, string key)
    {
        var (item, job, error) = await LoadJobAsync(context, store, guid, key);
        return error ?? TypedResults.Json(ToJson(job!, item!), ApiJson.Options);
    }

    private static async Task<IResult> Log(HttpContext context, ICatalogStore store, string guid, string key, int? tail)
    {
        var (_, job, error) = await LoadJobAsync(context, store, guid, key);
        if (error is not null)
        {
            return error;
        }
        var lines = job!.LogFile is { } f && File.Exists(f) ? await File.ReadAllLinesAsync(f, context.RequestAborted) : [];
        var take = Math.Clamp(tail ?? 1000, 1, 10_000);
        return TypedResults.Json(new JsonObject
        {
            ["source"] = "both",
            ["entries"] = new JsonArray(lines.TakeLast(take).Select(l => (JsonNode)new JsonObject { ["source"] = "output", ["timestamp"] = null, ["data"] = l }).ToArray()),
        }, ApiJson.Options);
    }

    private static async Task<IResult> Delete(HttpContext context, ICatalogStore store, IGrainFactory grains, string guid, string key)
    {
        var (item, job, error) = await LoadJobAsync(context, store, guid, key);
        if (error is not null)
        {
            return error;
        }
        await grains.GetGrain<IContentGrain>(item!.Guid).StopJobAsync(key);
        return TypedResults.Json(new JsonObject
        {
            ["guid"] = item.Guid.ToString("D"),
            ["app_id"] = ApiJson.Id(item.Id),
            ["app_guid"] = item.Guid.ToString("D"),
            ["job_id"] = ApiJson.Id(job!.Id),
            ["job_key"] = key,
            ["result"] = "Order to kill job registered",
        }, ApiJson.Options);
    }
}
