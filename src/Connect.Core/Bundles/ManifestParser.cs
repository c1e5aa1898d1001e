using System.Text.Json;
using Connect.Core.Content;

namespace Connect.Core.Bundles;

/// <summary>
/// Reads manifest.json. Unknown fields are ignored because clients add fields freely; fields Connect uses
/// must have the right JSON type, with null treated as absent.
/// </summary>
public static class ManifestParser
{
    // Real manifests are kilobytes; the cap only keeps a hostile bundle from making us load gigabytes.
    private const long MaxManifestBytes = 16 * 1024 * 1024;

    private const string DefaultPackageFile = "requirements.txt";

    // rsconnect writes older Node.js bundles with the pre-rename mode string.
    private const string LegacyNodeJsMode = "nodejs-api";

    public static Manifest ParseFile(string path)
    {
        byte[] bytes;
        try
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
            if (stream.Length > MaxManifestBytes)
            {
                throw new ManifestException($"manifest.json is larger than {MaxManifestBytes / (1024 * 1024)} MiB");
            }

            bytes = new byte[stream.Length];
            stream.ReadExactly(bytes);
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ManifestException("manifest.json is missing from the bundle", ex);
        }

        return Parse(bytes);
    }

    public static Manifest Parse(ReadOnlySpan<byte> utf8Json)
    {
        // Editors on Windows like to prepend a BOM, which Utf8JsonReader rejects.
        if (utf8Json.StartsWith("\uFEFF"u8))
        {
            utf8Json = utf8Json[3..];
        }

        JsonDocument document;
        try
        {
            var reader = new Utf8JsonReader(utf8Json, new JsonReaderOptions { MaxDepth = 128 });
            document = JsonDocument.ParseValue(ref reader);
        }
        catch (JsonException ex)
        {
            throw new ManifestException($"manifest.json is not valid JSON: {ex.Message}", ex);
        }

        using (document)
        {
            return Read(document.RootElement);
        }
    }

    private static Manifest Read(JsonElement root)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new ManifestException($"manifest.json: the top level must be a JSON object, got {Describe(root)}");
        }

        var version = 1;
        if (TryGet(root, "version", out var versionElement))
        {
            if (versionElement.ValueKind != JsonValueKind.Number || !versionElement.TryGetInt32(out version))
            {
                throw new ManifestException($"manifest.json: version must be an integer, got {Describe(versionElement)}");
            }
        }

        var metadata = GetObject(root, "metadata", "metadata")
            ?? throw new ManifestException("manifest.json: metadata is missing");

        var appMode = GetString(metadata, "appmode", "metadata.appmode")
            ?? throw new ManifestException("manifest.json: metadata.appmode is missing");
        if (appMode == LegacyNodeJsMode)
        {
            appMode = AppModes.NodeJs;
        }

        if (!AppModes.IsKnown(appMode))
        {
            throw new ManifestException($"manifest.json: metadata.appmode '{appMode}' is not a known app mode");
        }

        if (appMode == AppModes.Unknown)
        {
            throw new ManifestException("manifest.json: metadata.appmode 'unknown' cannot be deployed; choose a concrete app mode");
        }

        string? pythonVersion = null;
        string? packageFile = null;
        string? packageManager = null;
        var python = GetObject(root, "python", "python");
        if (python is { } pythonBlock)
        {
            pythonVersion = GetString(pythonBlock, "version", "python.version");
            var manager = GetObject(pythonBlock, "package_manager", "python.package_manager");
            if (manager is { } managerBlock)
            {
                packageManager = GetString(managerBlock, "name", "python.package_manager.name");
                packageFile = GetString(managerBlock, "package_file", "python.package_manager.package_file");
            }

            packageFile ??= DefaultPackageFile;
        }

        string? pythonRequires = null;
        string? image = null;
        bool? pythonManagement = null;
        bool? rManagement = null;
        // rsconnect writes environment.image (--image) and environment.environment_management.{python,r}
        // (--disable-env-management-py/-r) only when the publisher set them, so absence means "server default".
        var environment = GetObject(root, "environment", "environment");
        if (environment is { } environmentBlock)
        {
            if (GetObject(environmentBlock, "python", "environment.python") is { } environmentPython)
            {
                pythonRequires = GetString(environmentPython, "requires", "environment.python.requires");
            }

            image = GetString(environmentBlock, "image", "environment.image");
            if (image is not null && string.IsNullOrWhiteSpace(image))
            {
                throw new ManifestException("manifest.json: environment.image must name an image, got an empty string");
            }

            if (GetObject(environmentBlock, "environment_management", "environment.environment_management") is { } management)
            {
                pythonManagement = GetOptionalBool(management, "python", "environment.environment_management.python");
                rManagement = GetOptionalBool(management, "r", "environment.environment_management.r");
            }
        }

        var hideAllInput = false;
        var hideTaggedInput = false;
        var jupyter = GetObject(root, "jupyter", "jupyter");
        if (jupyter is { } jupyterBlock)
        {
            hideAllInput = GetBool(jupyterBlock, "hide_all_input", "jupyter.hide_all_input");
            hideTaggedInput = GetBool(jupyterBlock, "hide_tagged_input", "jupyter.hide_tagged_input");
        }

        return new Manifest
        {
            Version = version,
            AppMode = appMode,
            Entrypoint = GetString(metadata, "entrypoint", "metadata.entrypoint"),
            PrimaryHtml = GetString(metadata, "primary_html", "metadata.primary_html"),
            ContentCategory = GetString(metadata, "content_category", "metadata.content_category") ?? "",
            PythonVersion = pythonVersion,
            PythonRequires = pythonRequires,
            PythonPackageFile = packageFile,
            PythonPackageManager = packageManager,
            PythonEnvironmentManagement = pythonManagement,
            REnvironmentManagement = rManagement,
            EnvironmentImage = image,
            HideAllInput = hideAllInput,
            HideTaggedInput = hideTaggedInput,
            Files = ReadFiles(root),
        };
    }

    private static Dictionary<string, string> ReadFiles(JsonElement root)
    {
        var files = new Dictionary<string, string>(StringComparer.Ordinal);
        if (GetObject(root, "files", "files") is not { } filesBlock)
        {
            return files;
        }

        foreach (var property in filesBlock.EnumerateObject())
        {
            var field = $"files[\"{property.Name}\"]";
            if (property.Value.ValueKind != JsonValueKind.Object)
            {
                throw new ManifestException($"manifest.json: {field} must be an object, got {Describe(property.Value)}");
            }

            var checksum = GetString(property.Value, "checksum", field + ".checksum")
                ?? throw new ManifestException($"manifest.json: {field}.checksum is missing");
            if (!IsMd5Hex(checksum))
            {
                throw new ManifestException($"manifest.json: {field}.checksum '{checksum}' is not an MD5 hex digest");
            }

            // JSON permits repeated keys; silently keeping one would make the checksum that is verified ambiguous.
            if (!files.TryAdd(property.Name, checksum.ToLowerInvariant()))
            {
                throw new ManifestException($"manifest.json: {field} is listed more than once");
            }
        }

        return files;
    }

    private static bool IsMd5Hex(string value)
    {
        if (value.Length != 32)
        {
            return false;
        }

        foreach (var c in value)
        {
            if (!char.IsAsciiHexDigit(c))
            {
                return false;
            }
        }

        return true;
    }

    private static bool TryGet(JsonElement parent, string name, out JsonElement value)
    {
        if (parent.TryGetProperty(name, out value) && value.ValueKind != JsonValueKind.Null)
        {
            return true;
        }

        value = default;
        return false;
    }

    private static JsonElement? GetObject(JsonElement parent, string name, string field)
    {
        if (!TryGet(parent, name, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new ManifestException($"manifest.json: {field} must be an object, got {Describe(value)}");
        }

        return value;
    }

    private static string? GetString(JsonElement parent, string name, string field)
    {
        if (!TryGet(parent, name, out var value))
        {
            return null;
        }

        if (value.ValueKind != JsonValueKind.String)
        {
            throw new ManifestException($"manifest.json: {field} must be a string, got {Describe(value)}");
        }

        return value.GetString();
    }

    private static bool GetBool(JsonElement parent, string name, string field) => GetOptionalBool(parent, name, field) ?? false;

    private static bool? GetOptionalBool(JsonElement parent, string name, string field)
    {
        if (!TryGet(parent, name, out var value))
        {
            return null;
        }

        return value.ValueKind switch
        {
            JsonValueKind.True => true,
            JsonValueKind.False => false,
            _ => throw new ManifestException($"manifest.json: {field} must be true or false, got {Describe(value)}"),
        };
    }

    private static string Describe(JsonElement value) => value.ValueKind switch
    {
        JsonValueKind.Object => "an object",
        JsonValueKind.Array => "an array",
        JsonValueKind.String => "a string",
        JsonValueKind.Number => "a number",
        JsonValueKind.True or JsonValueKind.False => "a boolean",
        JsonValueKind.Null => "null",
        _ => value.ValueKind.ToString(),
    };
}
