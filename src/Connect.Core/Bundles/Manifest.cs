using Connect.Core.Content;

namespace Connect.Core.Bundles;

/// <summary>The subset of a bundle's manifest.json that Connect acts on.</summary>
public sealed record Manifest
{
    public int Version { get; init; } = 1;

    public string AppMode { get; init; } = AppModes.Unknown;

    /// <summary>Python "module" or "module:object"; for documents and static content, a file name.</summary>
    public string? Entrypoint { get; init; }

    public string? PrimaryHtml { get; init; }

    public string ContentCategory { get; init; } = "";

    /// <summary>python.version: the interpreter the publisher used.</summary>
    public string? PythonVersion { get; init; }

    /// <summary>environment.python.requires: a version specifier such as "&gt;=3.10".</summary>
    public string? PythonRequires { get; init; }

    /// <summary>python.package_manager.package_file.</summary>
    public string? PythonPackageFile { get; init; }

    /// <summary>python.package_manager.name, e.g. "pip".</summary>
    public string? PythonPackageManager { get; init; }

    /// <summary>
    /// environment.environment_management.python: false asks Connect to run the content against the interpreter's own
    /// packages instead of building an environment. Null: the bundle leaves it to the server's default.
    /// </summary>
    public bool? PythonEnvironmentManagement { get; init; }

    /// <summary>environment.environment_management.r, read for completeness: this server does not run R content yet.</summary>
    public bool? REnvironmentManagement { get; init; }

    /// <summary>environment.image: the container image the publisher asked the content to run in off-host.</summary>
    public string? EnvironmentImage { get; init; }

    public bool HideAllInput { get; init; }

    public bool HideTaggedInput { get; init; }

    /// <summary>Bundle-relative path to lower-case MD5 hex digest.</summary>
    public IReadOnlyDictionary<string, string> Files { get; init; } = new Dictionary<string, string>(StringComparer.Ordinal);
}
