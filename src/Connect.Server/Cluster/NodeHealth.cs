using Connect.Core.Hosting;

namespace Connect.Server.Cluster;

/// <summary>
/// Health for the load balancer. Liveness: the process answers. Readiness: the silo has joined the cluster, the
/// catalog answered within the last few heartbeats and the node is not draining; otherwise 503 with the reason.
/// </summary>
public static class NodeHealth
{
    public const string LivePath = "/__health__/live";
    public const string ReadyPath = "/__health__/ready";

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet(LivePath, (LocalNode node) => TypedResults.Json(new { node = node.Name, status = "live" }));
        app.MapGet(ReadyPath, (LocalNode node, TimeProvider time, Microsoft.Extensions.Options.IOptions<ClusterOptions> options) =>
        {
            // A few missed heartbeats, not one: a slow query must not take the node out of the pool.
            var grace = TimeSpan.FromMilliseconds(Math.Max(3000, options.Value.HeartbeatMilliseconds * 3));
            var reason = node.NotReadyReason(time.GetUtcNow(), grace);
            return reason is null
                ? Results.Json(new { node = node.Name, status = "ready" })
                : Results.Json(new { node = node.Name, status = "not ready", reason }, statusCode: StatusCodes.Status503ServiceUnavailable);
        });
    }
}
