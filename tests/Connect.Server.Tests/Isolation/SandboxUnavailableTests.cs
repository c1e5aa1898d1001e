using System.Net;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Isolation;

/// <summary>A node whose host cannot sandbox (here: bubblewrap is "missing") in the default Auto mode.</summary>
public sealed class NoBubblewrapFixture : ConnectServerFixture
{
    protected override IEnumerable<string> ExtraArguments => ["--Sandbox:Bubblewrap=/no/such/bwrap"];
}

/// <summary>Without a working sandbox the server starts, serves static content, but runs no publisher code, and says why.</summary>
public sealed class SandboxUnavailableTests(NoBubblewrapFixture server) : IClassFixture<NoBubblewrapFixture>
{
    [Fact]
    public async Task Code_is_refused_with_the_reason_while_static_content_still_serves()
    {
        var app = (await server.Admin.CreateContentAsync("no-sandbox-app", "all"))["guid"]!.GetValue<string>();
        var bundleId = await server.Admin.UploadBundleAsync(app, Bundles.Create("python-api",
            new Dictionary<string, string> { ["app.py"] = "from flask import Flask\napp = Flask(__name__)\n", ["requirements.txt"] = "" },
            entrypoint: "app", pythonVersion: "3.11.2"));
        var (task, output) = await server.Admin.WaitForTaskAsync(await server.Admin.StartDeployAsync(app, bundleId));
        Assert.NotEqual(0, task["code"]!.GetValue<int>());
        var error = task["error"]!.GetValue<string>();
        Assert.Contains("bubblewrap", error, StringComparison.Ordinal);
        Assert.Contains("Sandbox:Mode=Disabled", error, StringComparison.Ordinal);
        _ = output;

        var site = (await server.Admin.CreateContentAsync("no-sandbox-site", "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(site, Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>still here</p>" }, primaryHtml: "index.html"));
        using var page = await server.Anonymous.GetAsync($"content/{site}/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
    }

    [Fact]
    public async Task Required_mode_refuses_to_start_and_names_what_is_missing()
    {
        var e = await Assert.ThrowsAsync<ConfigurationProblemsException>(() => ConnectServer.BuildAsync(
        [
            $"--Connect:DataDir={Path.Combine(Path.GetTempPath(), "connect-tests", Guid.NewGuid().ToString("N"))}",
            "--Sandbox:Mode=Required",
            "--Sandbox:Bubblewrap=/no/such/bwrap",
        ]));
        Assert.Contains(e.Problems, p => p.Contains("bubblewrap", StringComparison.Ordinal));
    }
}
