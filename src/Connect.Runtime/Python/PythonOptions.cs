namespace Connect.Runtime.Python;

/// <summary>Python settings, bound from the "Python" configuration section.</summary>
public sealed class PythonOptions
{
    public const string SectionName = "Python";

    /// <summary>
    /// Interpreters content may use. Default: empty, which means discover them on the host (python3/python3.N on PATH,
    /// /usr/bin, /usr/local/bin, ~/.pyenv/versions).
    /// </summary>
    public List<string> Executables { get; set; } = new();

    /// <summary>Package index URL handed to pip as --index-url. Default: null, which leaves pip's own default.</summary>
    public string? PackageIndex { get; set; }

    /// <summary>Directories or URLs of wheels handed to pip as --find-links. Default: empty.</summary>
    public List<string> FindLinks { get; set; } = new();

    /// <summary>Pass --no-index to pip so it installs only from <see cref="FindLinks"/>. Default: false.</summary>
    public bool NoIndex { get; set; }

    /// <summary>Upper bound in seconds for creating one environment (venv plus pip install). Default: 900.</summary>
    public int InstallTimeoutSeconds { get; set; } = 900;

    /// <summary>
    /// Whether Connect builds each Python content's environment (venv plus pip install of its requirements) when the
    /// bundle's manifest does not say (environment.environment_management.python). False: content runs against the
    /// packages installed with the matched interpreter and its requirements file is never installed; a manifest's
    /// explicit value still wins. Default: true.
    /// </summary>
    public bool EnvironmentManagement { get; set; } = true;

    /// <summary>Every problem with these settings; empty when they are usable.</summary>
    public IEnumerable<string> Validate()
    {
        foreach (var executable in Executables)
        {
            if (string.IsNullOrWhiteSpace(executable))
            {
                yield return "Python:Executables contains an empty entry.";
            }
            else if (!Path.IsPathFullyQualified(executable))
            {
                yield return $"Python:Executables entry '{executable}' must be an absolute path.";
            }
            else if (!File.Exists(executable))
            {
                yield return $"Python:Executables entry '{executable}' does not exist.";
            }
        }

        if (PackageIndex is not null && !IsUrl(PackageIndex))
        {
            yield return $"Python:PackageIndex '{PackageIndex}' is not an http(s) or file URL.";
        }

        if (NoIndex && PackageIndex is not null)
        {
            yield return "Python:NoIndex is set, so Python:PackageIndex would be ignored; set only one of them.";
        }

        foreach (var link in FindLinks)
        {
            if (string.IsNullOrWhiteSpace(link))
            {
                yield return "Python:FindLinks contains an empty entry.";
            }
            else if (!IsUrl(link) && !Directory.Exists(link))
            {
                yield return $"Python:FindLinks entry '{link}' is neither an http(s)/file URL nor an existing directory.";
            }
        }

        if (NoIndex && FindLinks.Count == 0)
        {
            yield return "Python:NoIndex is set without Python:FindLinks: pip could only use packages already installed.";
        }

        if (InstallTimeoutSeconds <= 0)
        {
            yield return $"Python:InstallTimeoutSeconds must be positive (got {InstallTimeoutSeconds}).";
        }
    }

    // On Unix Uri.TryCreate takes "/some/path" for a file URL; pip wants an explicit scheme, so require "://".
    private static bool IsUrl(string value) =>
        value.Contains("://", StringComparison.Ordinal)
        && Uri.TryCreate(value, UriKind.Absolute, out var uri)
        && uri.Scheme is "http" or "https" or "file";
}
