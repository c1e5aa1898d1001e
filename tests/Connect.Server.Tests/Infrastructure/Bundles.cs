using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Connect.Server.Tests.Infrastructure;

/// <summary>Builds bundles the way rsconnect does: a gzip'd tar of files plus a manifest.json listing their MD5s.</summary>
public static class Bundles
{
    public static string SamplesDirectory { get; } = typeof(Bundles).Assembly
        .GetCustomAttributes(typeof(System.Reflection.AssemblyMetadataAttribute), false)
        .Cast<System.Reflection.AssemblyMetadataAttribute>()
        .Single(a => a.Key == "SamplesDirectory").Value!;

    /// <summary>The tar.gz of a sample directory, manifest as committed.</summary>
    public static byte[] FromSample(string name)
    {
        var root = Path.Combine(SamplesDirectory, name);
        var files = Directory.EnumerateFiles(root, "*", SearchOption.AllDirectories)
            .Where(f => !f.Contains("__pycache__", StringComparison.Ordinal))
            .ToDictionary(f => Path.GetRelativePath(root, f).Replace('\\', '/'), File.ReadAllBytes);
        return TarGz(files);
    }

    /// <summary>A bundle from in-memory files with a generated manifest; <paramref name="tweakManifest"/> edits it before it is written.</summary>
    public static byte[] Create(string appMode, IReadOnlyDictionary<string, string> files, string? entrypoint = null, string? pythonVersion = null,
        string? primaryHtml = null, Action<JsonObject>? tweakManifest = null)
    {
        var metadata = new JsonObject { ["appmode"] = appMode };
        if (entrypoint is not null) metadata["entrypoint"] = entrypoint;
        if (primaryHtml is not null) metadata["primary_html"] = primaryHtml;
        var manifest = new JsonObject { ["version"] = 1, ["metadata"] = metadata };
        if (pythonVersion is not null)
        {
            manifest["python"] = new JsonObject
            {
                ["version"] = pythonVersion,
                ["package_manager"] = new JsonObject { ["name"] = "pip", ["version"] = "23.0.1", ["package_file"] = "requirements.txt" },
            };
        }
        var listed = new JsonObject();
        foreach (var (path, text) in files)
        {
            listed[path] = new JsonObject { ["checksum"] = Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(text))) };
        }
        manifest["files"] = listed;
        tweakManifest?.Invoke(manifest);
        var all = files.ToDictionary(kv => kv.Key, kv => Encoding.UTF8.GetBytes(kv.Value));
        all["manifest.json"] = Encoding.UTF8.GetBytes(manifest.ToJsonString());
        return TarGz(all);
    }

    public static byte[] TarGz(IReadOnlyDictionary<string, byte[]> files)
    {
        using var output = new MemoryStream();
        using (var gzip = new GZipStream(output, CompressionLevel.Fastest, leaveOpen: true))
        using (var tar = new TarWriter(gzip, TarEntryFormat.Pax, leaveOpen: true))
        {
            foreach (var (path, bytes) in files)
            {
                var entry = new PaxTarEntry(TarEntryType.RegularFile, path) { DataStream = new MemoryStream(bytes), Mode = (UnixFileMode)0b110_100_100 };
                tar.WriteEntry(entry);
            }
        }
        return output.ToArray();
    }
}
