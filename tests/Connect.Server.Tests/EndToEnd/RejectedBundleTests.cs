using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.EndToEnd;

/// <summary>
/// A bundle rejected at any stage of its deploy fails the task with a reason the publisher can act on and leaves
/// nothing of itself in the data directory, while the active bundle keeps its files and keeps serving.
/// </summary>
public sealed class RejectedBundleTests(ConnectServerFixture server) : IClassFixture<ConnectServerFixture>
{
    private static byte[] Hostile(string kind) => kind switch
    {
        "bad-archive" => [0x1f, 0x8b, 0x08, 0x00, .. Encoding.ASCII.GetBytes(new string('x', 600))],
        "bad-manifest" => Bundles.TarGz(new Dictionary<string, byte[]>
        {
            ["index.html"] = "<p>evil</p>"u8.ToArray(),
            ["manifest.json"] = "{\"version\":1,\"metadata\":"u8.ToArray(),
        }),
        "bad-md5" => Bundles.TarGz(new Dictionary<string, byte[]>
        {
            ["index.html"] = "<p>evil</p>"u8.ToArray(),
            ["manifest.json"] = """{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{"index.html":{"checksum":"00000000000000000000000000000000"}}}"""u8.ToArray(),
        }),
        "name-too-long" => Bundles.TarGz(new Dictionary<string, byte[]>
        {
            ["index.html"] = "<p>evil</p>"u8.ToArray(),
            [new string('n', 300) + ".html"] = "<p>evil</p>"u8.ToArray(),
            ["manifest.json"] = """{"version":1,"metadata":{"appmode":"static","primary_html":"index.html"},"files":{}}"""u8.ToArray(),
        }),
        "escaping-entrypoint" => Bundles.Create("python-api",
            new Dictionary<string, string> { ["app.py"] = "app = None\n", ["requirements.txt"] = "" }, entrypoint: "../../x:app", pythonVersion: "3.11.2"),
        "manifest-is-a-directory" => Bundles.TarGz(new Dictionary<string, byte[]>
        {
            ["index.html"] = "<p>evil</p>"u8.ToArray(),
            ["manifest.json/inner.txt"] = "x"u8.ToArray(),
        }),
        _ => throw new ArgumentOutOfRangeException(nameof(kind)),
    };

    [Theory]
    [InlineData("bad-archive", "not a valid tar.gz archive")]
    [InlineData("bad-manifest", "manifest.json")]
    [InlineData("bad-md5", "checksum")]
    [InlineData("name-too-long", "file name too long: ")]
    [InlineData("escaping-entrypoint", "metadata.entrypoint '../../x:app'")]
    [InlineData("manifest-is-a-directory", "manifest.json")]
    public async Task A_rejected_bundle_leaves_nothing_unpacked_and_the_active_bundle_keeps_serving(string kind, string expected)
    {
        var guid = (await server.Admin.CreateContentAsync("rejected-" + kind, "all"))["guid"]!.GetValue<string>();
        var good = await server.Admin.DeployAsync(guid, Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>good</p>" }, primaryHtml: "index.html"));
        var apps = Path.Combine(server.DataDir, "apps", guid);
        var before = Entries(apps);
        Assert.Contains(good, before);

        var bad = await server.Admin.UploadBundleAsync(guid, Hostile(kind));
        var (task, output) = await server.Admin.WaitForTaskAsync(await server.Admin.StartDeployAsync(guid, bad));

        Assert.Equal(1, task["code"]!.GetValue<int>());
        var error = task["error"]!.GetValue<string>();
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain("internal error", error, StringComparison.Ordinal);
        Assert.Contains(output, l => l.StartsWith("Error: ", StringComparison.Ordinal));

        var after = Entries(apps);
        Assert.DoesNotContain(after, e => e == bad || e.StartsWith(bad + ".", StringComparison.Ordinal));
        Assert.DoesNotContain(after, e => e.Contains(".tmp-", StringComparison.Ordinal));
        Assert.Equal(before, after);
        Assert.Contains("good", await server.Anonymous.GetStringAsync($"content/{guid}/"));
        var content = (await server.Admin.GetFromJsonAsync<JsonObject>($"__api__/v1/content/{guid}"))!;
        Assert.Equal(good, content["bundle_id"]!.GetValue<string>());
    }

    [Fact]
    public async Task Redeploying_the_active_bundle_reuses_its_directory()
    {
        var guid = (await server.Admin.CreateContentAsync("rejected-redeploy", "all"))["guid"]!.GetValue<string>();
        var good = await server.Admin.DeployAsync(guid, Bundles.Create("static", new Dictionary<string, string> { ["index.html"] = "<p>good</p>" }, primaryHtml: "index.html"));

        var (task, output) = await server.Admin.WaitForTaskAsync(await server.Admin.StartDeployAsync(guid, good));

        Assert.Equal(0, task["code"]!.GetValue<int>());
        Assert.Contains(output, l => l.Contains("already unpacked", StringComparison.Ordinal));
        Assert.True(Directory.Exists(Path.Combine(server.DataDir, "apps", guid, good)));
        Assert.Contains("good", await server.Anonymous.GetStringAsync($"content/{guid}/"));
    }

    private static string[] Entries(string directory) =>
        Directory.Exists(directory)
            ? [.. Directory.EnumerateFileSystemEntries(directory).Select(e => Path.GetFileName(e)).Order(StringComparer.Ordinal)]
            : [];
}
