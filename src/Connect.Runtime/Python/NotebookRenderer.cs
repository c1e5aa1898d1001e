using System.Text.Json;
using Connect.Runtime.Processes;
using Connect.Runtime.Sandbox;

namespace Connect.Runtime.Python;

/// <summary>Executes a Jupyter notebook and renders it to HTML with nbconvert, inside a Python environment.</summary>
public static class NotebookRenderer
{
    private const int TailLines = 40;

    /// <summary>
    /// Runs <c>python -m nbconvert --to html --execute</c> with the environment's python, writing
    /// <paramref name="outputHtmlPath"/> (replaced atomically, so readers never see a partial page).
    /// </summary>
    public static async Task RenderAsync(
        PythonEnvironment env, string notebookPath, string outputHtmlPath, bool hideAllInput, Action<string> log,
        TimeSpan timeout, CancellationToken ct, ContentSandbox? sandbox = null, ResourceLimits? limits = null, string? pythonPrefix = null)
    {
        ArgumentNullException.ThrowIfNull(env);
        ArgumentNullException.ThrowIfNull(log);
        var notebook = Path.GetFullPath(notebookPath);
        if (!File.Exists(notebook))
        {
            throw new NotebookRenderException($"Notebook '{notebookPath}' does not exist.");
        }

        var output = Path.GetFullPath(outputHtmlPath);
        var outputDirectory = Path.GetDirectoryName(output)!;
        Directory.CreateDirectory(outputDirectory);
        var scratch = Directory.CreateTempSubdirectory("connect-nbconvert-").FullName;
        // The notebook's code runs as content does: it writes only the scratch and the output directory.
        sandbox?.GiveToContent(scratch);
        sandbox?.GiveToContent(outputDirectory);
        var stem = $".connect-render-{Guid.NewGuid():N}";
        var rendered = Path.Combine(outputDirectory, stem + ".html");
        try
        {
            var environment = PythonLaunch.EnvironmentFor(env);
            // Debian's python3 kernelspec runs /usr/bin/python3, not the environment's python, so cells would miss the
            // environment's packages. A private "python3" kernelspec first on JUPYTER_PATH points at the right one.
            await WriteKernelSpecAsync(Path.Combine(scratch, "jupyter"), env.PythonPath, ct).ConfigureAwait(false);
            environment["JUPYTER_PATH"] = Path.Combine(scratch, "jupyter");
            environment["JUPYTER_RUNTIME_DIR"] = Path.Combine(scratch, "runtime");
            environment["JUPYTER_CONFIG_DIR"] = Path.Combine(scratch, "config");
            environment["IPYTHONDIR"] = Path.Combine(scratch, "ipython");
            environment["JUPYTER_PLATFORM_DIRS"] = "1";
            environment["MPLBACKEND"] = "Agg";

            var arguments = new List<string>
            {
                "-m", "nbconvert", "--to", "html", "--execute",
                "--ExecutePreprocessor.kernel_name=python3",
                "--output-dir", outputDirectory,
                "--output", stem,
            };
            if (hideAllInput)
            {
                arguments.Add("--no-input");
            }

            arguments.Add(notebook);
            var tail = new LogRing(TailLines);
            void Capture(string line)
            {
                tail.Add(line);
                log(line);
            }

            var spec = new LaunchSpec(env.PythonPath, arguments, Path.GetDirectoryName(notebook)!, environment);
            ProcessResult result;
            if (sandbox is null)
            {
                result = await ProcessRunner.RunAsync(spec, Capture, timeout, ct).ConfigureAwait(false);
            }
            else
            {
                // No network: a render needs none, and a kernel talks to nbconvert over its own loopback.
                var profile = new SandboxProfile
                {
                    ReadOnly = [Path.GetDirectoryName(notebook)!, env.Directory, .. (pythonPrefix is { } prefix ? new[] { prefix } : [])],
                    Writable = [scratch, outputDirectory],
                    Network = false,
                    Limits = limits ?? ResourceLimits.None,
                };
                await using var launch = sandbox.Prepare(spec, profile, "render-" + Guid.NewGuid().ToString("N")[..12]);
                result = await ProcessRunner.RunAsync(launch.Spec, Capture, timeout, ct).ConfigureAwait(false);
                if (launch.ExplainExit(result.ExitCode) is { } why)
                {
                    Capture("Connect: " + why);
                }
            }
            if (result.TimedOut || result.ExitCode != 0 || !File.Exists(rendered))
            {
                var text = string.Join('\n', tail.All());

                var headline = result.TimedOut
                    ? $"Rendering {Path.GetFileName(notebook)} timed out after {timeout.TotalSeconds:0} seconds."
                    : $"Rendering {Path.GetFileName(notebook)} failed (exit code {result.ExitCode}).";
                throw new NotebookRenderException(text.Length == 0 ? headline : headline + "\n" + text);
            }

            if (!ContentOutput.IsRegularFile(rendered))
            {
                throw new NotebookRenderException($"Rendering {Path.GetFileName(notebook)} did not produce a regular HTML file.");
            }
            File.Move(rendered, output, overwrite: true);
        }
        finally
        {
            TryDelete(rendered);
            TryDeleteDirectory(scratch);
        }
    }

    private static async Task WriteKernelSpecAsync(string jupyterPath, string python, CancellationToken ct)
    {
        var directory = Path.Combine(jupyterPath, "kernels", "python3");
        Directory.CreateDirectory(directory);
        var spec = new
        {
            argv = new[] { python, "-m", "ipykernel_launcher", "-f", "{connection_file}" },
            display_name = "Python 3 (Connect)",
            language = "python",
        };
        await File.WriteAllTextAsync(Path.Combine(directory, "kernel.json"), JsonSerializer.Serialize(spec), ct).ConfigureAwait(false);
    }

    private static void TryDelete(string file)
    {
        try
        {
            File.Delete(file);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: a leftover hidden temp file is harmless and the next render uses a new name.
        }
    }

    private static void TryDeleteDirectory(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort, as above.
        }
    }
}
