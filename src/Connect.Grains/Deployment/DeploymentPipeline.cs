using Connect.Core.Bundles;
using Connect.Core.Content;
using Connect.Core.Hosting;
using Connect.Data;
using Connect.Runtime.Python;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Connect.Grains.Deployment;

/// <summary>The outcome of building a bundle: what the ContentGrain records when it activates it.</summary>
public sealed record DeploymentOutcome(string AppMode, string? Entrypoint, string? PyVersion, string ContentCategory);

/// <summary>A deploy failure whose message publishers see as the task's error.</summary>
public sealed class DeploymentException(string message) : Exception(message);

/// <summary>
/// Turns an uploaded bundle into something runnable: unpack safely, validate the manifest, pick an interpreter,
/// build or reuse the environment, render documents. Pure node-local work with no grain state, so the
/// ContentGrain runs it off its scheduler and only commits the outcome. A bundle that fails leaves nothing unpacked
/// behind, unless it is the active bundle: its files are what the running content serves.
/// </summary>
public sealed partial class DeploymentPipeline(
    ICatalogStore store,
    DataPaths paths,
    IOptions<ConnectOptions> options,
    PythonInstallations pythons,
    PythonEnvironmentManager environments,
    PythonOptions pythonOptions,
    Connect.Runtime.Sandbox.ContentSandbox sandbox,
    Connect.Runtime.Sandbox.ApplicationsOptions applications,
    ILogger<DeploymentPipeline> logger)
{
    private static readonly HashSet<string> SupportedModes = [AppModes.Static, AppModes.PythonApi, AppModes.PythonFastApi, AppModes.PythonShiny, AppModes.JupyterStatic];

    public async Task<DeploymentOutcome> RunAsync(Guid content, long bundleId, Action<string> log, CancellationToken ct)
    {
        try
        {
            return await BuildAsync(content, bundleId, log, ct);
        }
        catch
        {
            await RemoveRejectedAsync(content, bundleId);
            throw;
        }
    }

    private async Task<DeploymentOutcome> BuildAsync(Guid content, long bundleId, Action<string> log, CancellationToken ct)
    {
        var archive = paths.BundleArchive(content, bundleId);
        if (!File.Exists(archive))
        {
            throw new DeploymentException($"bundle {bundleId} has no archive on this server");
        }
        var dir = paths.BundleDirectory(content, bundleId);
        if (Directory.Exists(dir))
        {
            log($"Bundle {bundleId} is already unpacked; reusing it.");
        }
        else
        {
            log($"Unpacking bundle {bundleId}...");
            var o = options.Value;
            try
            {
                var result = await BundleArchive.ExtractAsync(archive, dir, new BundleLimits(o.MaxExtractedBytes, o.MaxBundleFiles, o.MaxExtractedBytes), ct);
                log($"Unpacked {result.FileCount} files ({result.TotalBytes} bytes).");
            }
            catch (BundleException e)
            {
                throw new DeploymentException(e.Message);
            }
        }

        Manifest manifest;
        try
        {
            manifest = ManifestParser.ParseFile(Path.Combine(dir, "manifest.json"));
        }
        catch (ManifestException e)
        {
            throw new DeploymentException(e.Message);
        }
        catch (FileNotFoundException)
        {
            throw new DeploymentException("bundle has no manifest.json at its root");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // e.g. a directory named manifest.json: the publisher's bundle, not the server, is at fault.
            throw new DeploymentException("bundle's manifest.json cannot be read as a file");
        }
        var problems = ManifestValidator.Validate(manifest, dir);
        if (problems.Count > 0)
        {
            foreach (var problem in problems)
            {
                log("manifest: " + problem);
            }
            throw new DeploymentException("invalid bundle: " + string.Join("; ", problems));
        }
        if (!SupportedModes.Contains(manifest.AppMode))
        {
            throw new DeploymentException($"app mode '{manifest.AppMode}' is not supported by this server yet");
        }
        log($"Bundle app mode: {manifest.AppMode}");

        var plan = new LaunchPlan(manifest.AppMode, manifest.Entrypoint ?? manifest.PrimaryHtml, null, null, null) { Image = manifest.EnvironmentImage };
        if (manifest.EnvironmentImage is { } image)
        {
            // Nothing on this host runs in containers yet; the plan keeps the image so off-host execution can use it.
            log($"Bundle requested container image {image}; recorded for off-host execution, this server runs content on the host.");
            LogImageRecorded(logger, content, bundleId, image);
        }
        if (AppModes.UsesPython(manifest.AppMode))
        {
            plan = await BuildPythonAsync(manifest, dir, plan, log, ct);
        }
        if (manifest.AppMode == AppModes.JupyterStatic)
        {
            await RenderNotebookAsync(content, bundleId, manifest, dir, plan, log, ct);
        }
        if (manifest.AppMode == AppModes.Static)
        {
            plan = plan with { Entrypoint = StaticPrimary(manifest, dir) };
        }
        await plan.WriteAsync(paths.LaunchPlan(content, bundleId), ct);
        LogBuilt(logger, content, bundleId, manifest.AppMode);
        return new DeploymentOutcome(manifest.AppMode, plan.Entrypoint, plan.PythonVersion, manifest.ContentCategory);
    }

    private static string StaticPrimary(Manifest manifest, string dir)
    {
        var primary = manifest.PrimaryHtml ?? manifest.Entrypoint;
        return !string.IsNullOrEmpty(primary) ? primary : File.Exists(Path.Combine(dir, "index.html")) ? "index.html" : "";
    }

    private async Task<LaunchPlan> BuildPythonAsync(Manifest manifest, string dir, LaunchPlan plan, Action<string> log, CancellationToken ct)
    {
        log("Building Python environment...");
        var available = await pythons.GetAsync(ct);
        if (!string.IsNullOrEmpty(manifest.PythonVersion))
        {
            log($"Bundle requested Python version {manifest.PythonVersion}");
        }
        try
        {
            sandbox.EnsureAvailable();
        }
        catch (Connect.Runtime.Sandbox.SandboxUnavailableException e)
        {
            throw new DeploymentException(e.Message);
        }
        var python = PythonInstallations.Match(available, manifest.PythonVersion)
            ?? throw new DeploymentException(
                $"no Python installation on this server matches the requested version {manifest.PythonVersion}; available: " +
                (available.Count == 0 ? "none" : string.Join(", ", available.Select(p => p.Version))));
        log($"Using Python {python.Version} at {python.Path}");

        // The bundle's own choice wins; only a manifest that says nothing falls back to the server's default.
        var managed = manifest.PythonEnvironmentManagement ?? pythonOptions.EnvironmentManagement;
        PythonEnvironment env;
        if (!managed)
        {
            log($"Python environment management is disabled: using the packages installed with Python {python.Version} at {python.Path}; "
                + $"{manifest.PythonPackageFile ?? "requirements.txt"} is not installed.");
            try
            {
                env = await environments.EnsureUnmanagedAsync(python, log, ct);
            }
            catch (PythonEnvironmentException e)
            {
                // No packages are installed on this path: a failure is creating the venv itself.
                throw new DeploymentException("Error code: python-environment-failed. " + e.Message);
            }
            log($"Python environment ready ({env.Hash[..12]}, unmanaged).");
            return WithPython(plan, env, python) with { EnvironmentManaged = false };
        }

        string? requirements = null;
        if (manifest.PythonPackageFile is { Length: > 0 } packageFile)
        {
            var candidate = Path.GetFullPath(Path.Combine(dir, packageFile));
            if (!candidate.StartsWith(dir + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            {
                throw new DeploymentException($"python.package_manager.package_file '{packageFile}' leaves the bundle");
            }
            requirements = File.Exists(candidate) ? candidate : null;
        }
        try
        {
            env = await environments.EnsureAsync(python, requirements, log, ct);
        }
        catch (PythonEnvironmentException e)
        {
            throw new DeploymentException("Error code: python-package-install-failed. " + e.Message);
        }
        log($"Python environment ready ({env.Hash[..12]}).");
        return WithPython(plan, env, python);
    }

    private static LaunchPlan WithPython(LaunchPlan plan, PythonEnvironment env, PythonInstallation python)
    {
        // The interpreter's installation is recorded from what the server chose, never read back from the environment's
        // pyvenv.cfg, which build-time code could rewrite to have a host directory mounted into the app's sandbox.
        var prefix = Connect.Runtime.Sandbox.PythonSandbox.InstallationPrefix(Path.GetDirectoryName(Path.GetFullPath(python.Path)) ?? "/usr/bin");
        return plan with { PythonPath = env.PythonPath, EnvironmentDirectory = env.Directory, PythonVersion = python.Version, PythonPrefix = prefix };
    }

    private async Task RenderNotebookAsync(Guid content, long bundleId, Manifest manifest, string dir, LaunchPlan plan, Action<string> log, CancellationToken ct)
    {
        var notebook = Path.Combine(dir, manifest.Entrypoint!);
        var output = paths.OutputDirectory(content, bundleId);
        var staging = output + ".tmp-" + Guid.NewGuid().ToString("N");
        Directory.CreateDirectory(staging);
        log($"Rendering {manifest.Entrypoint}...");
        try
        {
            var env = new PythonEnvironment(plan.EnvironmentDirectory!, plan.PythonPath!, "");
            var limits = Connect.Runtime.Sandbox.ResourceLimiter.ResourceLimitsFor(null, null, applications);
            await NotebookRenderer.RenderAsync(env, notebook, Path.Combine(staging, "index.html"), manifest.HideAllInput, log,
                TimeSpan.FromSeconds(options.Value.DeployTimeoutSeconds), ct, sandbox, limits, plan.PythonPrefix);
            // The notebook's code could write this directory: links (the front end would follow them as root), sockets
            // and devices go, and the rest becomes root's and read-only before it is served.
            var removed = Connect.Runtime.Sandbox.ContentOutput.Seal(staging, takeOwnership: Connect.Runtime.Sandbox.RunAsUser.ServerIsRoot);
            if (removed > 0)
            {
                log($"Removed {removed} links or special files the render left in its output.");
            }
            if (Directory.Exists(output))
            {
                Directory.Delete(output, recursive: true);
            }
            Directory.Move(staging, output);
        }
        catch (NotebookRenderException e)
        {
            throw new DeploymentException("rendering the notebook failed: " + e.Message);
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
        log("Rendered document saved.");
    }

    /// <summary>
    /// Removes what a failed deploy unpacked, planned or rendered for the bundle, so rejected uploads do not accumulate on
    /// (shared) storage. The active bundle is left alone: a failed redeploy of it reused the directory the content runs from.
    /// </summary>
    private async Task RemoveRejectedAsync(Guid content, long bundleId)
    {
        try
        {
            var item = await store.GetContentAsync(content, CancellationToken.None);
            if (item?.BundleId == bundleId)
            {
                return;
            }
            foreach (var directory in new[] { paths.BundleDirectory(content, bundleId), paths.OutputDirectory(content, bundleId) })
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }
            }
            File.Delete(paths.LaunchPlan(content, bundleId));
            LogRemovedRejected(logger, content, bundleId);
        }
        catch (Exception e)
        {
            // The deploy's own error is what the publisher must see; leftovers are only disk space.
            LogRemoveRejectedFailed(logger, e, content, bundleId);
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Removed the unpacked files of rejected bundle {BundleId} of content {Content}")]
    private static partial void LogRemovedRejected(ILogger logger, Guid content, long bundleId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Could not remove the unpacked files of rejected bundle {BundleId} of content {Content}")]
    private static partial void LogRemoveRejectedFailed(ILogger logger, Exception exception, Guid content, long bundleId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Bundle {BundleId} of content {Content} requests container image {Image}; recorded on its launch plan")]
    private static partial void LogImageRecorded(ILogger logger, Guid content, long bundleId, string image);

    [LoggerMessage(Level = LogLevel.Information, Message = "Built bundle {BundleId} of content {Content} as {AppMode}")]
    private static partial void LogBuilt(ILogger logger, Guid content, long bundleId, string appMode);
}
