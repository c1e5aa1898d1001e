namespace Connect.Core.Bundles;

/// <summary>Normalises bundle-relative paths from tar headers and manifest keys and confines them to a root.</summary>
internal static class BundlePaths
{
    /// <summary>NAME_MAX on Linux (and most file systems): the longest single path component, in bytes.</summary>
    public const int MaxNameBytes = 255;

    /// <summary>
    /// Longest bundle-relative path, in UTF-8 bytes; leaves room under Linux's PATH_MAX (4096) for the data directory
    /// the bundle is unpacked into, so a legal-looking archive never fails with an OS error halfway through.
    /// </summary>
    public const int MaxRelativePathBytes = 3072;

    private static readonly char[] InvalidNameChars = Path.GetInvalidFileNameChars();

    /// <summary>
    /// Produces a '/'-separated relative path without "." or empty segments ("" means the root itself),
    /// or a publisher-facing reason why <paramref name="name"/> is not acceptable.
    /// </summary>
    public static bool TryNormalize(string name, out string relative, out string? problem)
    {
        relative = "";
        problem = null;

        if (name.Contains('\0', StringComparison.Ordinal))
        {
            problem = "contains a NUL character";
            return false;
        }

        // rsconnect on Windows writes manifest keys with '\' while tarfile stores '/', so both count as separators;
        // this also stops "..\x" from becoming an escape on a Windows host.
        var path = name.Replace('\\', '/');

        if (path.StartsWith('/'))
        {
            problem = "is an absolute path";
            return false;
        }

        if (path.Length >= 2 && char.IsAsciiLetter(path[0]) && path[1] == ':')
        {
            problem = "starts with a drive letter";
            return false;
        }

        var segments = new List<string>();
        foreach (var segment in path.Split('/'))
        {
            if (segment.Length == 0 || segment == ".")
            {
                continue;
            }

            if (segment == "..")
            {
                problem = "leaves the bundle directory";
                return false;
            }

            if (segment.IndexOfAny(InvalidNameChars) >= 0)
            {
                problem = "contains characters that are not allowed in file names";
                return false;
            }

            var bytes = System.Text.Encoding.UTF8.GetByteCount(segment);
            if (bytes > MaxNameBytes)
            {
                problem = $"is invalid (file name too long: a path component is {bytes} bytes, at most {MaxNameBytes} are allowed)";
                return false;
            }

            segments.Add(segment);
        }

        relative = string.Join('/', segments);
        var total = System.Text.Encoding.UTF8.GetByteCount(relative);
        if (total > MaxRelativePathBytes)
        {
            problem = $"is invalid (path too long: {total} bytes, at most {MaxRelativePathBytes} are allowed)";
            relative = "";
            return false;
        }

        return true;
    }

    /// <summary>
    /// Maps a normalised relative path under <paramref name="fullRoot"/>, re-checking containment on the
    /// final full path so no platform path quirk can place it elsewhere.
    /// </summary>
    public static string? Resolve(string fullRoot, string relative)
    {
        var candidate = Path.GetFullPath(Path.Combine(fullRoot, relative.Replace('/', Path.DirectorySeparatorChar)));
        var rootWithSeparator = Path.EndsInDirectorySeparator(fullRoot) ? fullRoot : fullRoot + Path.DirectorySeparatorChar;
        var comparison = OperatingSystem.IsLinux() ? StringComparison.Ordinal : StringComparison.OrdinalIgnoreCase;
        if (string.Equals(candidate, fullRoot, comparison) || candidate.StartsWith(rootWithSeparator, comparison))
        {
            return candidate;
        }

        return null;
    }
}
