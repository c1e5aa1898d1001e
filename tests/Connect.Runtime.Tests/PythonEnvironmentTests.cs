using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Connect.Runtime.Processes;
using Connect.Runtime.Python;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

// Its own fixture instead of the shared collection: these builds are slow and can overlap with the launch tests.
public sealed class PythonEnvironmentTests : IClassFixture<PythonFixture>, IDisposable
{
    private readonly PythonFixture _python;
    private readonly TestDirectory _dir = new();

    public PythonEnvironmentTests(PythonFixture python)
    {
        _python = python;
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Concurrent_callers_build_once_and_later_callers_reuse_it()
    {
        var python = await _python.InstallationAsync(PythonFixture.SystemPython);
        // Requirements already satisfied by Debian's packages: pip runs but needs no index.
        var requirements = _dir.Write("bundle/requirements.txt", "# web\nflask>=1.0   # from the system\n\n");
        var manager = NewManager(new PythonOptions { NoIndex = true });
        var logA = new List<string>();
        var logB = new List<string>();

        var results = await Task.WhenAll(
            manager.EnsureAsync(python, requirements, l => { lock (logA) { logA.Add(l); } }, default),
            manager.EnsureAsync(python, requirements, l => { lock (logB) { logB.Add(l); } }, default));

        Assert.Equal(results[0], results[1]);
        var env = results[0];
        Assert.StartsWith(_dir.Combine("envs") + "/", env.Directory, StringComparison.Ordinal);
        Assert.Equal(64, env.Hash.Length);
        Assert.Equal(env.Hash[..16], Path.GetFileName(env.Directory));
        Assert.True(File.Exists(env.PythonPath));
        var builds = new[] { logA, logB }.Count(log => log.Any(l => l.StartsWith("Creating Python", StringComparison.Ordinal)));
        Assert.Equal(1, builds);
        Assert.Contains(logA.Concat(logB), l => l.Contains("Requirement already satisfied: flask", StringComparison.OrdinalIgnoreCase));

        // Reordering lines or changing comments does not make it a different environment.
        var sameRequirements = _dir.Write("other/requirements.txt", "flask>=1.0\n# another comment\n");
        var log = new List<string>();
        var again = await NewManager(new PythonOptions()).EnsureAsync(python, sameRequirements, log.Add, default);
        Assert.Equal(env, again);
        Assert.Single(log);
        Assert.StartsWith("Using existing", log[0], StringComparison.Ordinal);

        // The interpreter sees the system's flask through the venv.
        Assert.Equal("ok", await RunPythonAsync(env, "import flask, sys; assert sys.prefix != sys.base_prefix; print('ok')"));

        // A directory without the ready marker (a build that died half-way) is thrown away and rebuilt.
        File.Delete(Path.Combine(env.Directory, ".connect-ready"));
        await File.WriteAllTextAsync(Path.Combine(env.Directory, "leftover"), "x");
        var rebuilt = await manager.EnsureAsync(python, requirements, _ => { }, default);
        Assert.Equal(env, rebuilt);
        Assert.False(File.Exists(Path.Combine(env.Directory, "leftover")));
        Assert.True(File.Exists(Path.Combine(env.Directory, ".connect-ready")));
    }

    [Fact]
    public async Task Unmanaged_environment_is_an_empty_venv_over_the_interpreter_kept_apart_from_managed_ones()
    {
        var python = await _python.InstallationAsync(PythonFixture.SystemPython);
        var manager = NewManager(new PythonOptions { NoIndex = true });
        var log = new List<string>();

        var unmanaged = await manager.EnsureUnmanagedAsync(python, log.Add, default);
        var managedEmpty = await manager.EnsureAsync(python, requirementsFile: null, _ => { }, default);

        Assert.NotEqual(managedEmpty.Directory, unmanaged.Directory);
        Assert.True(File.Exists(unmanaged.PythonPath));
        // No pip was seeded, let alone run: the interpreter's own packages are all the content gets.
        Assert.Empty(Directory.GetFiles(Path.Combine(unmanaged.Directory, "bin"), "pip*"));
        Assert.DoesNotContain(log, l => l.Contains("Installing packages", StringComparison.Ordinal));
        Assert.Equal("ok", await RunPythonAsync(unmanaged, "import flask, sys; assert sys.prefix != sys.base_prefix; print('ok')"));

        var again = new List<string>();
        Assert.Equal(unmanaged, await manager.EnsureUnmanagedAsync(python, again.Add, default));
        Assert.StartsWith("Using existing", Assert.Single(again), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unsatisfiable_requirement_fails_with_pips_message_and_leaves_nothing_behind()
    {
        var python = await _python.InstallationAsync(PythonFixture.Pyenv3117);
        var requirements = _dir.Write("bundle/requirements.txt", "definitely-not-a-package==9.9\n");
        var manager = NewManager(new PythonOptions { NoIndex = true });
        var log = new List<string>();

        var error = await Assert.ThrowsAsync<PythonEnvironmentException>(() => manager.EnsureAsync(python, requirements, log.Add, default));

        Assert.Contains("definitely-not-a-package==9.9", error.Message, StringComparison.Ordinal);
        Assert.Contains("ERROR: No matching distribution found", error.Message, StringComparison.Ordinal);
        Assert.Contains(log, l => l.StartsWith("ERROR:", StringComparison.Ordinal));
        Assert.Empty(Directory.EnumerateDirectories(_dir.Combine("envs")));
    }

    [Fact]
    public async Task Installs_from_a_local_wheel_directory_without_an_index()
    {
        var python = await _python.InstallationAsync(PythonFixture.Pyenv3117);
        var wheels = _dir.Combine("wheels");
        Directory.CreateDirectory(wheels);
        WriteWheel(Path.Combine(wheels, "connect_tiny_pkg-0.1-py3-none-any.whl"), "connect_tiny_pkg", "0.1", "VALUE = 42\n");
        var requirements = _dir.Write("bundle/requirements.txt", "connect-tiny-pkg==0.1\n");
        var manager = NewManager(new PythonOptions { NoIndex = true, FindLinks = [wheels] });
        var log = new List<string>();

        var env = await manager.EnsureAsync(python, requirements, log.Add, default);

        Assert.Contains(log, l => l.Contains("Successfully installed connect-tiny-pkg-0.1", StringComparison.OrdinalIgnoreCase));
        Assert.Equal("42", await RunPythonAsync(env, "import connect_tiny_pkg; print(connect_tiny_pkg.VALUE)"));
        // Installed into the venv, not the interpreter it was made from.
        Assert.NotEqual(0, (await ProcessRunner.RunAsync(
            new LaunchSpec(python.Path, ["-c", "import connect_tiny_pkg"], _dir.Path, new Dictionary<string, string>()), _ => { }, TimeSpan.FromSeconds(30), default)).ExitCode);
    }

    [Fact]
    public async Task No_requirements_file_means_no_pip()
    {
        var env = await _python.PyenvEnvironmentAsync();
        Assert.Equal("3.1", await RunPythonAsync(env, "import flask, importlib.metadata as m; print('.'.join(m.version('flask').split('.')[:2]))"));
        var empty = _dir.Write("bundle/requirements.txt", "# nothing\n\n");
        var log = new List<string>();
        var same = await _python.Manager.EnsureAsync(await _python.InstallationAsync(PythonFixture.Pyenv3117), empty, log.Add, default);
        Assert.Equal(env, same);
    }

    private PythonEnvironmentManager NewManager(PythonOptions options) =>
        new(_dir.Combine("envs"), options, NullLogger<PythonEnvironmentManager>.Instance);

    private async Task<string> RunPythonAsync(PythonEnvironment env, string code)
    {
        var lines = new List<string>();
        var result = await ProcessRunner.RunAsync(
            new LaunchSpec(env.PythonPath, ["-c", code], _dir.Path, new Dictionary<string, string>()),
            l => { lock (lines) { lines.Add(l); } },
            TimeSpan.FromSeconds(30),
            default);
        Assert.True(result.ExitCode == 0, string.Join('\n', lines));
        return string.Join('\n', lines);
    }

    /// <summary>A minimal pure-Python wheel: the package, METADATA, WHEEL and a RECORD with real hashes.</summary>
    private static void WriteWheel(string path, string package, string version, string initContent)
    {
        var distInfo = $"{package}-{version}.dist-info";
        var files = new Dictionary<string, string>
        {
            [$"{package}/__init__.py"] = initContent,
            [$"{distInfo}/METADATA"] = $"Metadata-Version: 2.1\nName: {package.Replace('_', '-')}\nVersion: {version}\n",
            [$"{distInfo}/WHEEL"] = "Wheel-Version: 1.0\nGenerator: connect-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        };
        var record = new StringBuilder();
        foreach (var (name, content) in files)
        {
            var bytes = Encoding.UTF8.GetBytes(content);
            var hash = Convert.ToBase64String(SHA256.HashData(bytes)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
            record.Append(System.Globalization.CultureInfo.InvariantCulture, $"{name},sha256={hash},{bytes.Length}\n");
        }

        record.Append(System.Globalization.CultureInfo.InvariantCulture, $"{distInfo}/RECORD,,\n");
        files[$"{distInfo}/RECORD"] = record.ToString();

        using var zip = ZipFile.Open(path, ZipArchiveMode.Create);
        foreach (var (name, content) in files)
        {
            using var writer = new StreamWriter(zip.CreateEntry(name).Open(), new UTF8Encoding(false));
            writer.Write(content);
        }
    }
}
