using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>What a node finds when it starts on the data directory of a previous run.</summary>
public sealed class RestartTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    [Fact]
    public async Task Content_survives_a_restart_and_a_deploy_cut_short_is_reported_failed()
    {
        var site = (await server.Admin.CreateContentAsync("restart-site", "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(site, Bundles.FromSample("static-site"));

        // A notebook that takes long enough to render that the restart lands in the middle of its deploy.
        var slow = (await server.Admin.CreateContentAsync("restart-slow", "all"))["guid"]!.GetValue<string>();
        var notebook = """{"cells":[{"cell_type":"code","execution_count":null,"metadata":{},"outputs":[],"source":["import time\n","time.sleep(60)"]}],"metadata":{"kernelspec":{"display_name":"Python 3","language":"python","name":"python3"}},"nbformat":4,"nbformat_minor":5}""";
        var bundleId = await server.Admin.UploadBundleAsync(slow, Bundles.Create("jupyter-static",
            new Dictionary<string, string> { ["slow.ipynb"] = notebook, ["requirements.txt"] = "" }, entrypoint: "slow.ipynb", pythonVersion: "3.11.2"));
        var taskId = await server.Admin.StartDeployAsync(slow, bundleId);
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (!(await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/tasks/{taskId}?wait=1"))!["output"]!.AsArray()
                   .Any(l => l!.GetValue<string>().StartsWith("Rendering", StringComparison.Ordinal)))
        {
            Assert.True(DateTime.UtcNow < deadline, "the render never started");
        }

        await server.RestartAsync();

        var (task, _) = await server.Admin.WaitForTaskAsync(taskId, TimeSpan.FromSeconds(30));
        Assert.Equal(1, task["code"]!.GetValue<int>());
        Assert.Contains("restarted", task["error"]!.GetValue<string>());
        Assert.Contains("Hello from a static site", await server.Anonymous.GetStringAsync($"content/{site}/"));
        Assert.Null((await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{slow}"))!["bundle_id"]);
        Assert.Equal("admin", (await server.Admin.GetFromJsonAsync<JsonObject>("__api__/v1/user"))!["username"]!.GetValue<string>());
    }
}
