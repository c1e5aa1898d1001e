using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using Connect.Core.Bundles;

namespace Connect.Core.Tests.Bundles;

/// <summary>Bundles written by a publisher who is trying to escape the bundle or crash the deploy.</summary>
public sealed class HostileBundleTests : IDisposable
{
    // Layout: <root>/upload.tar.gz, <root>/apps/bundle and <root>/bundle (for manifest checks): anything left behind shows up.
    private readonly TempDirectory _temp = new();
    private readonly string _archive;
    private readonly string _apps;
    private readonly string _target;
    private readonly string _bundle;

    public HostileBundleTests()
    {
        _archive = _temp.Combine("upload.tar.gz");
        _apps = _temp.Combine("apps");
        _target = Path.Combine(_apps, "bundle");
        _bundle = _temp.Combine("bundle");
        Directory.CreateDirectory(_apps);
        Directory.CreateDirectory(_bundle);
        File.WriteAllText(Path.Combine(_bundle, "app.py"), "app = None\n");
        Directory.CreateDirectory(Path.Combine(_bundle, "pkg"));
        File.WriteAllText(Path.Combine(_bundle, "pkg", "__init__.py"), "");
        File.WriteAllText(Path.Combine(_bundle, "pkg", "server.py"), "app = None\n");
    }

    public void Dispose() => _temp.Dispose();

    // ------------------------------------------------------------------ Python entrypoints

    [Theory]
    [InlineData("../../x:app")]
    [InlineData("/etc/x")]
    [InlineData("a/../../b")]
    [InlineData("../app.py")]
    [InlineData("/etc/passwd.py:app")]
    [InlineData("..app")]
    [InlineData(".app")]
    [InlineData("app..x")]
    [InlineData("pkg\\server")]
    [InlineData("app:../x")]
    [InlineData("app:app()")]
    [InlineData("app; import os")]
    [InlineData("1app")]
    public void Entrypoints_that_are_not_python_module_names_are_rejected(string entrypoint)
    {
        foreach (var mode in new[] { "python-api", "python-fastapi" })
        {
            var problem = Assert.Single(ManifestValidator.Validate(new Manifest { AppMode = mode, Entrypoint = entrypoint }, _bundle));
            Assert.Contains("metadata.entrypoint", problem, StringComparison.Ordinal);
            Assert.Contains(entrypoint, problem, StringComparison.Ordinal);
        }
    }

    [Theory]
    [InlineData("os:system")]
    [InlineData("json")]
    [InlineData("pkg.missing:app")]
    [InlineData("missing.py")]
    public void Entrypoints_naming_a_module_the_bundle_does_not_hold_are_rejected(string entrypoint)
    {
        // With the bundle first on sys.path, these would import the interpreter's own modules instead.
        var problem = Assert.Single(ManifestValidator.Validate(new Manifest { AppMode = "python-api", Entrypoint = entrypoint }, _bundle));
        Assert.Contains("is not in the bundle", problem, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("app")]
    [InlineData("app:app")]
    [InlineData(" app : app ")]
    [InlineData("app:")]
    [InlineData("app.py")]
    [InlineData("app.py:app")]
    [InlineData("pkg")]
    [InlineData("pkg.server:create_app")]
    [InlineData("pkg/server.py:app")]
    [InlineData("pkg.server:app.wsgi_app")]
    public void Entrypoints_the_launcher_resolves_inside_the_bundle_are_accepted(string entrypoint)
    {
        Assert.Empty(ManifestValidator.Validate(new Manifest { AppMode = "python-fastapi", Entrypoint = entrypoint }, _bundle));
    }

    [Fact]
    public void A_unicode_module_name_is_an_identifier()
    {
        File.WriteAllText(Path.Combine(_bundle, "appé.py"), "app = None\n");

        Assert.Empty(ManifestValidator.Validate(new Manifest { AppMode = "python-api", Entrypoint = "appé:app" }, _bundle));
    }

    // ------------------------------------------------------------------ over-long names

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_file_name_over_NAME_MAX_is_a_clear_rejection_that_leaves_nothing_behind(bool nested)
    {
        var name = (nested ? "dir/" : "") + new string('a', 300) + ".py";
        WriteArchive(("app.py", "x"u8.ToArray()), (name, "x"u8.ToArray()));

        var ex = await AssertRejectedAsync();

        Assert.Contains("file name too long: ", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_multibyte_name_is_measured_in_bytes()
    {
        // 150 two-byte characters: 150 chars but 300 bytes, which is what the file system counts.
        WriteArchive((new string('é', 150), "x"u8.ToArray()));

        var ex = await AssertRejectedAsync();

        Assert.Contains("file name too long: a path component is 300 bytes", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_path_over_the_length_limit_is_rejected_before_the_file_system_sees_it()
    {
        var name = string.Join('/', Enumerable.Repeat(new string('d', 250), 14)) + "/f";
        WriteArchive((name, "x"u8.ToArray()));

        var ex = await AssertRejectedAsync();

        Assert.Contains("path too long", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_name_of_exactly_255_bytes_is_accepted()
    {
        var name = new string('b', 255);
        WriteArchive((name, "x"u8.ToArray()));

        var result = await BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default);

        Assert.Equal(1, result.FileCount);
        Assert.True(File.Exists(Path.Combine(_target, name)));
    }

    [Fact]
    public void A_manifest_key_over_NAME_MAX_is_a_clear_problem()
    {
        var key = new string('c', 300);
        var manifest = new Manifest
        {
            AppMode = "python-api",
            Entrypoint = "app",
            Files = new Dictionary<string, string>(StringComparer.Ordinal) { [key] = "00000000000000000000000000000000" },
        };

        var problem = Assert.Single(ManifestValidator.Validate(manifest, _bundle));

        Assert.Contains("file name too long: ", problem, StringComparison.Ordinal);
    }

    // ------------------------------------------------------------------ nothing left behind

    [Fact]
    public async Task A_truncated_archive_leaves_no_temporary_directory()
    {
        WriteArchive(("app.py", RandomNumberGenerator.GetBytes(4096)), ("b.py", "x"u8.ToArray()));
        var bytes = File.ReadAllBytes(_archive);
        File.WriteAllBytes(_archive, bytes[..(bytes.Length / 2)]);

        await AssertRejectedAsync();
    }

    [Fact]
    public async Task Garbage_instead_of_an_archive_leaves_no_temporary_directory()
    {
        File.WriteAllBytes(_archive, [0x1f, 0x8b, .. RandomNumberGenerator.GetBytes(1000)]);

        await AssertRejectedAsync();
    }

    private async Task<BundleException> AssertRejectedAsync()
    {
        var ex = await Assert.ThrowsAsync<BundleException>(() => BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default));
        Assert.Empty(Directory.GetFileSystemEntries(_apps));
        return ex;
    }

    private void WriteArchive(params (string Name, byte[] Content)[] files)
    {
        using var output = File.Create(_archive);
        using var gzip = new GZipStream(output, CompressionLevel.Fastest);
        using var writer = new TarWriter(gzip, TarEntryFormat.Pax);
        foreach (var (name, content) in files)
        {
            writer.WriteEntry(new PaxTarEntry(TarEntryType.RegularFile, name) { DataStream = new MemoryStream(content) });
        }
    }
}
