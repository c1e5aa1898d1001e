using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>A node that refuses to start unless it can sandbox (the run script installs bubblewrap).</summary>
public sealed class SandboxRequiredFixture : ConnectServerFixture
{
    protected override IEnumerable<string> ExtraArguments => ["--Sandbox:Mode=Required"];
}

/// <summary>A content process sees its own bundle and nothing of the data directory.</summary>
public sealed class SandboxTests(SandboxRequiredFixture server) : IClassFixture<SandboxRequiredFixture>
{
    private static readonly Dictionary<string, string> Probe = new()
    {
        ["app.py"] = """
            import os
            from flask import Flask, jsonify, request

            app = Flask(__name__)

            @app.get("/read")
            def read():
                try:
                    with open(request.args["path"], "rb") as f:
                        return jsonify(read=len(f.read()))
                except OSError as e:
                    return jsonify(error=type(e).__name__)

            @app.get("/write")
            def write():
                try:
                    with open(request.args["path"], "w") as f:
                        f.write("x")
                    return jsonify(wrote=True)
                except OSError as e:
                    return jsonify(error=type(e).__name__)

            @app.get("/cwd")
            def cwd():
                return jsonify(cwd=os.getcwd())
            """,
        ["requirements.txt"] = "",
    };

    [Fact]
    public async Task Content_cannot_read_the_catalog_the_key_or_other_bundles_nor_write_its_bundle()
    {
        var guid = (await server.Admin.CreateContentAsync("sandboxed", "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundles.Create("python-api", Probe, entrypoint: "app", pythonVersion: "3.11.2"));
        var other = (await server.Admin.CreateContentAsync("neighbour", "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(other, Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>private</p>" }, primaryHtml: "index.html"));

        async Task<JsonObject> Get(string path) => (await server.Anonymous.GetFromJsonAsync<JsonObject>($"content/{guid}/{path}"))!;
        string Escaped(string p) => Uri.EscapeDataString(p);

        var cwd = (await Get("cwd"))["cwd"]!.GetValue<string>();
        Assert.True((await Get($"read?path={Escaped(Path.Combine(cwd, "app.py"))}")).ContainsKey("read"));
        foreach (var secret in new[] { "db/secret.key", "db/connect.db", $"apps/{other}/1/index.html" })
        {
            var result = await Get($"read?path={Escaped(Path.Combine(server.DataDir, secret))}");
            Assert.True(result.ContainsKey("error"), $"{secret} was readable: {result.ToJsonString()}");
        }
        Assert.True((await Get($"write?path={Escaped(Path.Combine(cwd, "planted.py"))}")).ContainsKey("error"));
        Assert.False(File.Exists(Path.Combine(cwd, "planted.py")));
        Assert.True((await Get($"write?path={Escaped("/tmp/scratch.txt")}"))["wrote"]!.GetValue<bool>());
    }
}
