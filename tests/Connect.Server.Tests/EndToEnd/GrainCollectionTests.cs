using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>A node that collects unused grain activations after 2 s instead of 15 minutes.</summary>
public sealed class ShortCollectionFixture : ConnectServerFixture
{
    protected override IEnumerable<string> ExtraArguments => ["--Orleans:CollectionAgeSeconds=2"];
}

/// <summary>
/// In the steady state the front end routes from its cache without calling the ContentGrain; the grain must
/// not be collected (and take its serving processes with it) for want of calls.
/// </summary>
public sealed class GrainCollectionTests(ShortCollectionFixture server) : IClassFixture<ShortCollectionFixture>
{
    [Fact]
    public async Task A_serving_process_outlives_the_collection_age_of_its_grain()
    {
        var guid = (await server.Admin.CreateContentAsync("collect-me", "all", new JsonObject { ["idle_timeout"] = 120 }))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundles.FromSample("flask-api"));
        var first = (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/headers"))!;
        var jobs = (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/jobs"))!;
        var pid = Assert.Single(jobs)!["pid"]!.GetValue<string>();
        Assert.NotNull(first);

        // Several collection ages of steady, cache-routed traffic.
        var until = DateTime.UtcNow.AddSeconds(7);
        while (DateTime.UtcNow < until)
        {
            Assert.Equal(5, (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/add?a=2&b=3"))!["result"]!.GetValue<int>());
            await Task.Delay(200);
        }
        jobs = (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{guid}/jobs"))!;
        var job = Assert.Single(jobs)!;
        Assert.Equal(pid, job["pid"]!.GetValue<string>());
        Assert.Equal(0, job["status"]!.GetValue<int>());
    }
}
