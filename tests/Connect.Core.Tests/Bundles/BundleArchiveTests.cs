using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Connect.Core.Bundles;

namespace Connect.Core.Tests.Bundles;

public sealed class BundleArchiveTests : IDisposable
{
    private const UnixFileMode Mode644 = (UnixFileMode)0b110_100_100;
    private const UnixFileMode Mode755 = (UnixFileMode)0b111_101_101;

    private static readonly BundleLimits Small = new(MaxTotalBytes: 100, MaxFiles: 3, MaxFileBytes: 64);

    // Layout: <root>/upload.tar.gz and <root>/apps/bundle, so anything that escapes the target shows up in a listing.
    private readonly TempDirectory _temp = new();
    private readonly string _archive;
    private readonly string _apps;
    private readonly string _target;

    public BundleArchiveTests()
    {
        _archive = _temp.Combine("upload.tar.gz");
        _apps = _temp.Combine("apps");
        _target = Path.Combine(_apps, "bundle");
        Directory.CreateDirectory(_apps);
    }

    public void Dispose() => _temp.Dispose();

    private static byte[] RandomBytes(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static TarEntry Entry(TarEntryFormat format, TarEntryType type, string name) => format switch
    {
        TarEntryFormat.Pax => new PaxTarEntry(type, name),
        TarEntryFormat.Gnu => new GnuTarEntry(type, name),
        TarEntryFormat.Ustar => new UstarTarEntry(type, name),
        _ => throw new ArgumentOutOfRangeException(nameof(format)),
    };

    private static TarEntry FileEntry(string name, byte[] content, TarEntryFormat format = TarEntryFormat.Pax, UnixFileMode? mode = null)
    {
        var entry = Entry(format, TarEntryType.RegularFile, name);
        entry.DataStream = new MemoryStream(content);
        if (mode is { } m)
        {
            entry.Mode = m;
        }

        return entry;
    }

    private static TarEntry Link(TarEntryType type, string name, string target)
    {
        var entry = new PaxTarEntry(type, name) { LinkName = target };
        return entry;
    }

    private static byte[] BuildTar(Action<TarWriter> write, bool gzip, TarEntryFormat format = TarEntryFormat.Pax)
    {
        var buffer = new MemoryStream();
        using (Stream output = gzip ? new GZipStream(buffer, CompressionLevel.Fastest, leaveOpen: true) : new NonClosing(buffer))
        using (var writer = new TarWriter(output, format, leaveOpen: true))
        {
            write(writer);
        }

        return buffer.ToArray();
    }

    private void WriteArchive(Action<TarWriter> write, bool gzip = true, TarEntryFormat format = TarEntryFormat.Pax) =>
        File.WriteAllBytes(_archive, BuildTar(write, gzip, format));

    private async Task<BundleException> AssertRejectedAsync(BundleLimits limits)
    {
        var ex = await Assert.ThrowsAsync<BundleException>(() => BundleArchive.ExtractAsync(_archive, _target, limits));

        Assert.False(Directory.Exists(_target), "target directory must not exist after a rejected bundle");
        Assert.False(File.Exists(_target));
        Assert.Empty(Directory.GetFileSystemEntries(_apps));
        Assert.Equal(["apps", "upload.tar.gz"], Directory.GetFileSystemEntries(_temp.Root).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.False(File.Exists("/etc/evil"));
        return ex;
    }

    public static TheoryData<string> HostileCases =>
    [
        "dotdot", "absolute", "nested-dotdot", "dotdot-after-good-files", "backslash-dotdot", "drive-letter", "nul-in-name",
        "symlink-absolute", "symlink-up", "symlink-inside", "hardlink", "hardlink-absolute", "char-device", "block-device",
        "fifo", "too-many-files", "too-many-bytes", "oversized-entry", "too-many-directories", "duplicate-file",
        "file-under-file", "directory-over-file", "file-named-dot",
    ];

    private static (Action<TarWriter> Write, BundleLimits Limits, string Expected) Hostile(string name)
    {
        var one = "x"u8.ToArray();
        return name switch
        {
            "dotdot" => (w => w.WriteEntry(FileEntry("../evil", one)), BundleLimits.Default, "leaves the bundle directory"),
            "absolute" => (w => w.WriteEntry(FileEntry("/etc/evil", one)), BundleLimits.Default, "absolute path"),
            "nested-dotdot" => (w => w.WriteEntry(FileEntry("a/../../evil", one)), BundleLimits.Default, "leaves the bundle directory"),
            "dotdot-after-good-files" => (w =>
            {
                w.WriteEntry(FileEntry("app.py", one));
                w.WriteEntry(FileEntry("sub/dir/x.py", one));
                w.WriteEntry(FileEntry("sub/../../evil", one));
            }, BundleLimits.Default, "leaves the bundle directory"),
            "backslash-dotdot" => (w => w.WriteEntry(FileEntry("..\\evil", one)), BundleLimits.Default, "leaves the bundle directory"),
            "drive-letter" => (w => w.WriteEntry(FileEntry("C:/evil", one)), BundleLimits.Default, "drive letter"),
            "nul-in-name" => (w => w.WriteEntry(FileEntry("evil\0.txt", one)), BundleLimits.Default, "NUL"),
            "symlink-absolute" => (w => w.WriteEntry(Link(TarEntryType.SymbolicLink, "passwd", "/etc/passwd")), BundleLimits.Default, "symbolic link"),
            "symlink-up" => (w => w.WriteEntry(Link(TarEntryType.SymbolicLink, "x", "../..")), BundleLimits.Default, "symbolic link"),
            "symlink-inside" => (w =>
            {
                w.WriteEntry(FileEntry("a.txt", one));
                w.WriteEntry(Link(TarEntryType.SymbolicLink, "b.txt", "a.txt"));
            }, BundleLimits.Default, "symbolic link"),
            "hardlink" => (w =>
            {
                w.WriteEntry(FileEntry("a.txt", one));
                w.WriteEntry(Link(TarEntryType.HardLink, "h", "a.txt"));
            }, BundleLimits.Default, "hard link"),
            "hardlink-absolute" => (w => w.WriteEntry(Link(TarEntryType.HardLink, "h", "/etc/passwd")), BundleLimits.Default, "hard link"),
            "char-device" => (w => w.WriteEntry(new PaxTarEntry(TarEntryType.CharacterDevice, "null") { DeviceMajor = 1, DeviceMinor = 3 }), BundleLimits.Default, "device"),
            "block-device" => (w => w.WriteEntry(new PaxTarEntry(TarEntryType.BlockDevice, "sda") { DeviceMajor = 8 }), BundleLimits.Default, "device"),
            "fifo" => (w => w.WriteEntry(new PaxTarEntry(TarEntryType.Fifo, "pipe")), BundleLimits.Default, "named pipe"),
            "too-many-files" => (w =>
            {
                for (var i = 0; i < 4; i++)
                {
                    w.WriteEntry(FileEntry($"f{i}.txt", one));
                }
            }, Small, "more than 3 files"),
            "too-many-bytes" => (w =>
            {
                w.WriteEntry(FileEntry("a.bin", RandomBytes(60, 1)));
                w.WriteEntry(FileEntry("b.bin", RandomBytes(60, 2)));
            }, Small, "more than the limit of 100 bytes"),
            "oversized-entry" => (w => w.WriteEntry(FileEntry("big.bin", RandomBytes(65, 3))), Small, "per-file limit of 64 bytes"),
            "too-many-directories" => (w =>
            {
                for (var i = 0; i < 4; i++)
                {
                    w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, $"d{i}/"));
                }
            }, Small, "more than 3 directories"),
            "duplicate-file" => (w =>
            {
                w.WriteEntry(FileEntry("app.py", one));
                w.WriteEntry(FileEntry("./app.py", one));
            }, BundleLimits.Default, "more than once"),
            "file-under-file" => (w =>
            {
                w.WriteEntry(FileEntry("a", one));
                w.WriteEntry(FileEntry("a/b", one));
            }, BundleLimits.Default, "which is a file"),
            "directory-over-file" => (w =>
            {
                w.WriteEntry(FileEntry("a", one));
                w.WriteEntry(new PaxTarEntry(TarEntryType.Directory, "a/"));
            }, BundleLimits.Default, "more than once"),
            "file-named-dot" => (w => w.WriteEntry(FileEntry("./", one)), BundleLimits.Default, "without a file name"),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
    }

    [Theory]
    [MemberData(nameof(HostileCases))]
    public async Task Hostile_archive_is_rejected_without_leftovers(string name)
    {
        var (write, limits, expected) = Hostile(name);
        WriteArchive(write);

        var ex = await AssertRejectedAsync(limits);

        Assert.StartsWith("bundle rejected: ", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public async Task Truncated_gzip_is_not_a_valid_archive()
    {
        var full = BuildTar(w =>
        {
            w.WriteEntry(FileEntry("data.bin", RandomBytes(200_000, 4)));
            w.WriteEntry(FileEntry("manifest.json", "{}"u8.ToArray()));
        }, gzip: true);
        File.WriteAllBytes(_archive, full[..(full.Length / 2)]);

        var ex = await AssertRejectedAsync(BundleLimits.Default);

        Assert.StartsWith("bundle is not a valid tar.gz archive: ", ex.Message);
    }

    [Fact]
    public async Task Tar_cut_at_an_entry_boundary_is_not_a_valid_archive()
    {
        var full = BuildTar(w => w.WriteEntry(FileEntry("app.py", "print(1)"u8.ToArray())), gzip: false);
        // TarWriter ends the archive with two zero blocks; without them the upload was cut short.
        Assert.All(full[^1024..], b => Assert.Equal(0, b));
        File.WriteAllBytes(_archive, full[..^1024]);

        var ex = await AssertRejectedAsync(BundleLimits.Default);

        Assert.StartsWith("bundle is not a valid tar.gz archive: ", ex.Message);
    }

    [Fact]
    public async Task Tar_cut_inside_file_data_is_not_a_valid_archive()
    {
        var full = BuildTar(w => w.WriteEntry(FileEntry("data.bin", RandomBytes(10_000, 5))), gzip: false);
        File.WriteAllBytes(_archive, full[..5000]);

        var ex = await AssertRejectedAsync(BundleLimits.Default);

        Assert.Contains("truncated", ex.Message);
    }

    [Fact]
    public async Task Garbage_bytes_are_not_a_valid_archive()
    {
        var garbage = RandomBytes(4096, 6);
        garbage[0] = (byte)'G';
        File.WriteAllBytes(_archive, garbage);

        var ex = await AssertRejectedAsync(BundleLimits.Default);

        Assert.StartsWith("bundle is not a valid tar.gz archive: ", ex.Message);
    }

    [Fact]
    public async Task Garbage_after_gzip_magic_is_not_a_valid_archive()
    {
        var garbage = RandomBytes(4096, 7);
        garbage[0] = 0x1f;
        garbage[1] = 0x8b;
        garbage[2] = 0x08;
        garbage[3] = 0x00;
        File.WriteAllBytes(_archive, garbage);

        var ex = await AssertRejectedAsync(BundleLimits.Default);

        Assert.StartsWith("bundle is not a valid tar.gz archive: ", ex.Message);
    }

    [Fact]
    public async Task Empty_file_is_not_a_valid_archive()
    {
        File.WriteAllBytes(_archive, []);

        var ex = await AssertRejectedAsync(BundleLimits.Default);

        Assert.StartsWith("bundle is not a valid tar.gz archive: ", ex.Message);
    }

    public static TheoryData<TarEntryFormat, bool> Formats => new()
    {
        { TarEntryFormat.Pax, true },
        { TarEntryFormat.Gnu, true },
        { TarEntryFormat.Ustar, false },
    };

    [Theory]
    [MemberData(nameof(Formats))]
    public async Task Extracts_nested_bundle_with_dot_slash_names(TarEntryFormat format, bool gzip)
    {
        var big = RandomBytes(300_000, 8);
        var css = "body { color: red; }"u8.ToArray();
        var app = "print('hello')\n"u8.ToArray();
        var script = "#!/bin/sh\necho hi\n"u8.ToArray();
        var manifest = "{\"version\":1}"u8.ToArray();
        WriteArchive(w =>
        {
            w.WriteEntry(Entry(format, TarEntryType.Directory, "./"));
            w.WriteEntry(Entry(format, TarEntryType.Directory, "./static/"));
            w.WriteEntry(FileEntry("./static/css/site.css", css, format));
            w.WriteEntry(FileEntry("app.py", app, format, (UnixFileMode)0b100_110_110_110));
            w.WriteEntry(FileEntry("./bin/run.sh", script, format, (UnixFileMode)0b111_111_111));
            w.WriteEntry(FileEntry("data/deep/er/big.bin", big, format));
            w.WriteEntry(FileEntry("empty.txt", [], format));
            w.WriteEntry(Entry(format, TarEntryType.Directory, "./logs/"));
            w.WriteEntry(FileEntry("manifest.json", manifest, format));
        }, gzip, format);

        var result = await BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default);

        Assert.Equal(Path.GetFullPath(_target), result.Directory);
        Assert.Equal(6, result.FileCount);
        Assert.Equal(big.Length + css.Length + app.Length + script.Length + manifest.Length, result.TotalBytes);
        Assert.Equal(css, File.ReadAllBytes(Path.Combine(_target, "static", "css", "site.css")));
        Assert.Equal(app, File.ReadAllBytes(Path.Combine(_target, "app.py")));
        Assert.Equal(script, File.ReadAllBytes(Path.Combine(_target, "bin", "run.sh")));
        Assert.Equal(big, File.ReadAllBytes(Path.Combine(_target, "data", "deep", "er", "big.bin")));
        Assert.Empty(File.ReadAllBytes(Path.Combine(_target, "empty.txt")));
        Assert.Equal(manifest, File.ReadAllBytes(Path.Combine(_target, "manifest.json")));
        Assert.True(Directory.Exists(Path.Combine(_target, "logs")));
        Assert.Equal(["bundle"], Directory.GetFileSystemEntries(_apps).Select(Path.GetFileName));

        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(Mode644, File.GetUnixFileMode(Path.Combine(_target, "app.py")));
            Assert.Equal(Mode755, File.GetUnixFileMode(Path.Combine(_target, "bin", "run.sh")));
            Assert.Equal(Mode644, File.GetUnixFileMode(Path.Combine(_target, "manifest.json")));
            foreach (var dir in new[] { "", "static", "static/css", "bin", "data/deep/er", "logs" })
            {
                Assert.Equal(Mode755, File.GetUnixFileMode(Path.Combine(_target, dir)));
            }
        }
    }

    [Fact]
    public async Task Long_names_survive_extraction()
    {
        var name = string.Join('/', Enumerable.Repeat("a-fairly-long-directory-name", 6)) + "/module.py";
        WriteArchive(w => w.WriteEntry(FileEntry(name, "x = 1"u8.ToArray())));

        var result = await BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default);

        Assert.Equal(1, result.FileCount);
        Assert.Equal("x = 1", File.ReadAllText(Path.Combine(_target, name)));
    }

    [Fact]
    public async Task Limits_count_exactly_up_to_the_boundary()
    {
        WriteArchive(w =>
        {
            w.WriteEntry(FileEntry("a.bin", RandomBytes(64, 9)));
            w.WriteEntry(FileEntry("b.bin", RandomBytes(36, 10)));
            w.WriteEntry(FileEntry("c.bin", []));
        });

        var result = await BundleArchive.ExtractAsync(_archive, _target, Small);

        Assert.Equal(3, result.FileCount);
        Assert.Equal(100, result.TotalBytes);
    }

    [Fact]
    public async Task Archive_with_no_entries_extracts_to_empty_directory()
    {
        // Python's tarfile writes only the two zero end blocks for an empty archive.
        using (var output = new GZipStream(File.Create(_archive), CompressionLevel.Fastest))
        {
            output.Write(new byte[1024]);
        }

        var result = await BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default);

        Assert.Equal(0, result.FileCount);
        Assert.Empty(Directory.GetFileSystemEntries(_target));
    }

    [Fact]
    public async Task Existing_target_is_never_merged()
    {
        Directory.CreateDirectory(_target);
        File.WriteAllText(Path.Combine(_target, "keep.txt"), "old");
        WriteArchive(w => w.WriteEntry(FileEntry("app.py", "new"u8.ToArray())));

        await Assert.ThrowsAsync<IOException>(() => BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default));

        Assert.Equal(["keep.txt"], Directory.GetFileSystemEntries(_target).Select(Path.GetFileName));
        Assert.Equal(["bundle"], Directory.GetFileSystemEntries(_apps).Select(Path.GetFileName));
    }

    [Fact]
    public async Task Cancellation_leaves_nothing_behind()
    {
        WriteArchive(w => w.WriteEntry(FileEntry("app.py", "x"u8.ToArray())));
        using var cts = new CancellationTokenSource();
        await cts.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(
            () => BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default, cts.Token));

        Assert.Empty(Directory.GetFileSystemEntries(_apps));
    }

    [Fact]
    public async Task Extracted_bundle_passes_manifest_validation()
    {
        var app = "from fastapi import FastAPI\napp = FastAPI()\n"u8.ToArray();
        var reqs = "fastapi\nuvicorn\n"u8.ToArray();
        var manifest = """
            {"version":1,"metadata":{"appmode":"python-fastapi","entrypoint":"app"},
             "python":{"version":"3.11.7","package_manager":{"name":"pip","package_file":"requirements.txt"}},
             "files":{"app.py":{"checksum":"APP_MD5"},"requirements.txt":{"checksum":"REQS_MD5"}}}
            """
            .Replace("APP_MD5", Convert.ToHexStringLower(MD5.HashData(app)), StringComparison.Ordinal)
            .Replace("REQS_MD5", Convert.ToHexStringLower(MD5.HashData(reqs)), StringComparison.Ordinal);
        WriteArchive(w =>
        {
            w.WriteEntry(FileEntry("requirements.txt", reqs));
            w.WriteEntry(FileEntry("app.py", app));
            w.WriteEntry(FileEntry("manifest.json", Encoding.UTF8.GetBytes(manifest)));
        });

        var result = await BundleArchive.ExtractAsync(_archive, _target, BundleLimits.Default);
        var parsed = ManifestParser.ParseFile(Path.Combine(result.Directory, "manifest.json"));

        Assert.Empty(ManifestValidator.Validate(parsed, result.Directory));
    }

    /// <summary>Lets TarWriter dispose its output without closing the MemoryStream we still need to read.</summary>
    private sealed class NonClosing(Stream inner) : Stream
    {
        public override bool CanRead => false;

        public override bool CanSeek => false;

        public override bool CanWrite => true;

        public override long Length => inner.Length;

        public override long Position
        {
            get => inner.Position;
            set => throw new NotSupportedException();
        }

        public override void Flush() => inner.Flush();

        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => inner.Write(buffer, offset, count);
    }
}
