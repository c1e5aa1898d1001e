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
