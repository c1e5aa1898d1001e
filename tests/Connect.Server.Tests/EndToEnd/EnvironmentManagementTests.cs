using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>
/// "Use the interpreter's packages": with Python environment management off (the bundle's
/// environment.environment_management.python, else Python:EnvironmentManagement) nothing is pip-installed and the
/// content runs against what is installed with the matched interpreter. Flask comes from Debian's python3-flask.
/// </summary>
public static class UnmanagedBundles
{
    // Not installable from anywhere: a deploy that runs pip on it must fail, one that skips pip must not notice it.
    public const string Requirements = "flask\ndefinitely-not-a-package==9.9.9\n";

    public const string DisabledLine =
        "Python environment management is disabled: using the packages installed with Python 3.11.2 at /usr/bin/python3; requirements.txt is not installed";

    private const string App = """
        import sys
        from flask import Flask, jsonify

        app = Flask(__name__)


        @app.get("/")
        def index():
            return jsonify(message="unmanaged flask", prefix=sys.prefix, base_prefix=sys.base_prefix)
        """;

    /// <param name="management">environment.environment_management.python; null leaves it out, as rsconnect does by default.</param>
    public static byte[] Flask(bool? management, string? image = null) =>
        Bundles.Create("python-api", new Dictionary<string, string> { ["app.py"] = App, ["requirements.txt"] = Requirements },
            entrypoint: "app", pythonVersion: "3.11.2", tweakManifest: manifest =>
            {
                var environment = new JsonObject();
                if (management is { } value)
                {
                    environment["environment_management"] = new JsonObject { ["python"] = value };
                }
                if (image is not null)
                {
                    environment["image"] = image;
                }
                if (environment.Count > 0)
                {
                    manifest["environment"] = environment;
                }
            });

    public static async Task<(string Guid, string BundleId, JsonObject Task, List<string> Output)> DeployAsync(ConnectServerFixture server, byte[] bundle, string name)
    {
        var guid = (await server.Admin.CreateContentAsync($"{name}-{Guid.NewGuid().ToString("N")[..6]}", "all"))["guid"]!.GetValue<string>();
        var bundleId = await server.Admin.UploadBundleAsync(guid, bundle);
        var (task, output) = await server.Admin.WaitForTaskAsync(await server.Admin.StartDeployAsync(guid, bundleId));
        return (guid, bundleId, task, output);
    }

    public static async Task AssertDeployedUnmanagedAndServesAsync(ConnectServerFixture server, string guid, JsonObject task, List<string> output)
    {
        Assert.True(task["code"]!.GetValue<int>() == 0, string.Join('\n', output));
        Assert.Contains(output, l => l.Contains(DisabledLine, StringComparison.Ordinal));
        // pip never ran: neither its install step nor any of its output (it names the requirement it resolves).
        Assert.DoesNotContain(output, l => l.Contains("Installing packages from", StringComparison.Ordinal));
        Assert.DoesNotContain(output, l => l.Contains("definitely-not-a-package", StringComparison.Ordinal));
        Assert.DoesNotContain(output, l => l.Contains("Collecting", StringComparison.Ordinal) || l.StartsWith("ERROR:", StringComparison.Ordinal));

        var index = (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/"))!;
        Assert.Equal("unmanaged flask", index["message"]!.GetValue<string>());
        // Still launched from a (package-less) venv over the interpreter, so the sandbox and launch plan are unchanged.
        Assert.Equal("/usr", index["base_prefix"]!.GetValue<string>());
        Assert.StartsWith(Path.Combine(server.DataDir, "python", "envs"), index["prefix"]!.GetValue<string>());
    }

    public static void AssertFailedAtPip(JsonObject task, List<string> output)
    {
        Assert.Equal(1, task["code"]!.GetValue<int>());
        Assert.Contains("python-package-install-failed", task["error"]!.GetValue<string>());
        Assert.Contains("definitely-not-a-package", task["error"]!.GetValue<string>());
        Assert.DoesNotContain(output, l => l.Contains("environment management is disabled", StringComparison.Ordinal));
    }
}

public sealed class EnvironmentManagementTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    [Fact]
    public async Task Manifest_turning_management_off_skips_pip_and_runs_on_the_interpreters_packages()
    {
        var (guid, bundleId, task, output) = await UnmanagedBundles.DeployAsync(server, UnmanagedBundles.Flask(management: false, image: "ghcr.io/example/python:3.11"), "unmanaged");

        await UnmanagedBundles.AssertDeployedUnmanagedAndServesAsync(server, guid, task, output);
        Assert.Contains(output, l => l.Contains("container image ghcr.io/example/python:3.11", StringComparison.Ordinal));
        var plan = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(server.DataDir, "apps", guid, bundleId + ".plan.json")))!;
        Assert.Equal("ghcr.io/example/python:3.11", plan["image"]!.GetValue<string>());
        Assert.False(plan["environmentManaged"]!.GetValue<bool>());
    }

    [Fact]
    public async Task With_management_on_by_default_the_same_bundle_fails_at_pip()
    {
        var (_, _, task, output) = await UnmanagedBundles.DeployAsync(server, UnmanagedBundles.Flask(management: null), "managed");

        UnmanagedBundles.AssertFailedAtPip(task, output);
    }
}

public sealed class EnvironmentManagementOffFixture : ConnectServerFixture
{
    protected override IEnumerable<string> ExtraArguments => ["--Python:EnvironmentManagement=false"];
}

public sealed class ServerDefaultEnvironmentManagementTests(EnvironmentManagementOffFixture server) : IClassFixture<EnvironmentManagementOffFixture>
{
    [Fact]
    public async Task Server_default_off_applies_when_the_manifest_says_nothing()
    {
        var (guid, _, task, output) = await UnmanagedBundles.DeployAsync(server, UnmanagedBundles.Flask(management: null), "server-off");

        await UnmanagedBundles.AssertDeployedUnmanagedAndServesAsync(server, guid, task, output);
    }

    [Fact]
    public async Task Manifest_turning_management_on_overrides_the_server_default()
    {
        var (_, _, task, output) = await UnmanagedBundles.DeployAsync(server, UnmanagedBundles.Flask(management: true), "manifest-on");

        UnmanagedBundles.AssertFailedAtPip(task, output);
    }
}
