using System.Security.Cryptography;
using Connect.Core.Content;

namespace Connect.Core.Bundles;

/// <summary>Checks an extracted bundle against its manifest before anything is built or run from it.</summary>
public static class ManifestValidator
{
    private const string DefaultStaticPage = "index.html";

    private static readonly HashSet<string> ModesNeedingEntrypoint = new(StringComparer.Ordinal)
    {
        AppModes.PythonApi, AppModes.PythonFastApi, AppModes.PythonDash, AppModes.PythonStreamlit,
        AppModes.PythonBokeh, AppModes.PythonShiny, AppModes.PythonGradio, AppModes.PythonPanel,
    };

    // Modes whose entrypoint the launcher imports as a Python module (connect_launcher.py parse_entrypoint).
    private static readonly HashSet<string> ModesWithModuleEntrypoint = new(StringComparer.Ordinal)
    {
        AppModes.PythonApi, AppModes.PythonFastApi, AppModes.PythonShiny,
    };

    /// <summary>Returns every problem found, so a publisher can fix them in one go; empty means the bundle is usable.</summary>
    public static IReadOnlyList<string> Validate(Manifest manifest, string bundleDirectory)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        ArgumentException.ThrowIfNullOrEmpty(bundleDirectory);

        var problems = new List<string>();
        var root = Path.GetFullPath(bundleDirectory);
        if (!Directory.Exists(root))
        {
            problems.Add("bundle directory does not exist");
            return problems;
        }

        if (!AppModes.IsKnown(manifest.AppMode) || manifest.AppMode == AppModes.Unknown)
        {
            problems.Add($"manifest.json: metadata.appmode '{manifest.AppMode}' is not a deployable app mode");
        }

        if (ModesNeedingEntrypoint.Contains(manifest.AppMode) && string.IsNullOrWhiteSpace(manifest.Entrypoint))
        {
            problems.Add($"manifest.json: metadata.entrypoint is required for {manifest.AppMode} content (e.g. \"app\" or \"app:app\")");
        }

        if (ModesWithModuleEntrypoint.Contains(manifest.AppMode) && !string.IsNullOrWhiteSpace(manifest.Entrypoint))
        {
            ValidateModuleEntrypoint(manifest.Entrypoint, root, problems);
        }

        if (manifest.AppMode == AppModes.JupyterStatic)
        {
            ValidateNotebook(manifest, root, problems);
        }

        if (manifest.AppMode == AppModes.Static)
        {
            ValidateStatic(manifest, root, problems);
        }

        foreach (var (path, checksum) in manifest.Files.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            ValidateListedFile(root, path, checksum, problems);
        }

        return problems;
    }

    /// <summary>
    /// The launcher imports the entrypoint with the bundle first on sys.path, so anything but a module that the bundle
    /// itself holds ("../../x", "/etc/x", or a name that only the interpreter's own library has) would run code from
    /// outside the bundle. Accepted forms, as the launcher parses them: "module[.sub][:object[.attr]]" and "dir/file.py[:object]".
    /// </summary>
    private static void ValidateModuleEntrypoint(string entrypoint, string root, List<string> problems)
    {
        var colon = entrypoint.IndexOf(':', StringComparison.Ordinal);
        var module = (colon < 0 ? entrypoint : entrypoint[..colon]).Trim();
        var obj = colon < 0 ? "" : entrypoint[(colon + 1)..].Trim();
        var shown = Display(entrypoint);
        const string Forms = "use a dotted Python module name, optionally with \":object\" (e.g. \"app:app\"), or a file such as \"app.py\"";

        string[] segments;
        if (module.EndsWith(".py", StringComparison.Ordinal))
        {
            segments = module[..^3].Split('/');
        }
        else
        {
            segments = module.Split('.');
        }

        if (!segments.All(IsPythonIdentifier))
        {
            problems.Add($"manifest.json: metadata.entrypoint '{shown}' is not a Python module inside the bundle; {Forms}");
            return;
        }

        if (obj.Length > 0 && !obj.Split('.').All(IsPythonIdentifier))
        {
            problems.Add($"manifest.json: metadata.entrypoint '{shown}' names an object that is not a Python identifier; {Forms}");
            return;
        }

        // Identifiers cannot contain '/', '.' or ':', so this path is confined to the bundle by construction.
        var relative = string.Join(Path.DirectorySeparatorChar, segments);
        var asFile = Path.Combine(root, relative + ".py");
        var asPackage = Path.Combine(root, relative);
        if (!File.Exists(asFile) && !Directory.Exists(asPackage))
        {
            problems.Add($"manifest.json: metadata.entrypoint '{shown}' names module '{string.Join('.', segments)}', which is not in the bundle " +
                $"(expected {string.Join('/', segments)}.py or a {string.Join('/', segments)}/ package)");
        }
    }

    private static bool IsPythonIdentifier(string name)
    {
        if (name.Length == 0 || !(name[0] == '_' || IsIdentifierStart(name[0])))
        {
            return false;
        }

        foreach (var c in name.AsSpan(1))
        {
            if (!(c == '_' || IsIdentifierStart(c) || char.GetUnicodeCategory(c) is
                    System.Globalization.UnicodeCategory.DecimalDigitNumber or System.Globalization.UnicodeCategory.NonSpacingMark
                    or System.Globalization.UnicodeCategory.SpacingCombiningMark or System.Globalization.UnicodeCategory.ConnectorPunctuation))
            {
                return false;
            }
        }

        return true;
    }

    // Python identifiers start with a letter (any script) or '_' (PEP 3131); an approximation that never admits separators.
    private static bool IsIdentifierStart(char c) =>
        char.IsLetter(c) || char.GetUnicodeCategory(c) == System.Globalization.UnicodeCategory.LetterNumber;

    // The entrypoint comes from the publisher and ends up in task output.
    private static string Display(string value)
    {
        const int MaxLength = 200;
        var text = value.Length > MaxLength ? value[..MaxLength] + "…" : value;
        return new string([.. text.Select(c => char.IsControl(c) ? '?' : c)]);
    }

    private static void ValidateNotebook(Manifest manifest, string root, List<string> problems)
    {
        if (string.IsNullOrWhiteSpace(manifest.Entrypoint))
        {
            problems.Add("manifest.json: metadata.entrypoint must name the notebook (.ipynb) for jupyter-static content");
            return;
        }

        if (!manifest.Entrypoint.EndsWith(".ipynb", StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"manifest.json: metadata.entrypoint '{manifest.Entrypoint}' is not a Jupyter notebook (.ipynb)");
            return;
        }

        RequireFile(root, manifest.Entrypoint, "metadata.entrypoint", problems);
    }

    private static void ValidateStatic(Manifest manifest, string root, List<string> problems)
    {
        if (!string.IsNullOrWhiteSpace(manifest.PrimaryHtml))
        {
            RequireFile(root, manifest.PrimaryHtml, "metadata.primary_html", problems);
        }
        else if (!string.IsNullOrWhiteSpace(manifest.Entrypoint))
        {
            RequireFile(root, manifest.Entrypoint, "metadata.entrypoint", problems);
        }
        else if (!File.Exists(Path.Combine(root, DefaultStaticPage)))
        {
            problems.Add("manifest.json: static content needs metadata.primary_html naming the page to serve (or an index.html at the bundle root)");
        }
    }

    private static void RequireFile(string root, string path, string field, List<string> problems)
    {
        var fullPath = ResolveSafe(root, path, out var problem);
        if (fullPath is null)
        {
            problems.Add($"manifest.json: {field} '{path}' {problem}");
        }
        else if (!File.Exists(fullPath))
        {
            problems.Add($"manifest.json: {field} '{path}' does not exist in the bundle");
        }
    }

    private static void ValidateListedFile(string root, string path, string checksum, List<string> problems)
    {
        var fullPath = ResolveSafe(root, path, out var problem);
        if (fullPath is null)
        {
            problems.Add($"manifest.json: file '{path}' {problem}");
            return;
        }

        var info = new FileInfo(fullPath);
        if (!info.Exists)
        {
            problems.Add(Directory.Exists(fullPath)
                ? $"file '{path}' listed in manifest.json is a directory, not a file"
                : $"file '{path}' listed in manifest.json is missing from the bundle");
            return;
        }

        // Extraction never creates links; one found here was planted some other way and could point anywhere.
        if (info.LinkTarget is not null)
        {
            problems.Add($"file '{path}' listed in manifest.json is a symbolic link");
            return;
        }

        string actual;
        using (var stream = new FileStream(fullPath, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, FileOptions.SequentialScan))
        {
            actual = Convert.ToHexStringLower(MD5.HashData(stream));
        }

        if (!string.Equals(actual, checksum, StringComparison.OrdinalIgnoreCase))
        {
            problems.Add($"file '{path}' does not match its checksum in manifest.json (expected {checksum.ToLowerInvariant()}, got {actual})");
        }
    }

    private static string? ResolveSafe(string root, string path, out string? problem)
    {
        if (!BundlePaths.TryNormalize(path, out var relative, out problem))
        {
            return null;
        }

        if (relative.Length == 0)
        {
            problem = "does not name a file";
            return null;
        }

        var fullPath = BundlePaths.Resolve(root, relative);
        if (fullPath is null)
        {
            problem = "leaves the bundle directory";
        }

        return fullPath;
    }
}
