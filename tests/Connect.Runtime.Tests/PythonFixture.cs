using Connect.Runtime.Python;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

/// <summary>
/// Interpreters discovered once and virtual environments built once for the whole run: building a venv takes seconds,
/// so tests that only need "an environment" share these.
/// </summary>
public sealed class PythonFixture : IDisposable
{
    public const string SystemPython = "/usr/bin/python3";
    public const string Pyenv3117 = "/root/.pyenv/versions/3.11.7/bin/python3";

    private readonly TestDirectory _dir = new();
    private readonly Lazy<Task<IReadOnlyList<PythonInstallation>>> _installations;
    private readonly Lazy<Task<PythonEnvironment>> _systemEnvironment;
    private readonly Lazy<Task<PythonEnvironment>> _pyenvEnvironment;

    public PythonFixture()
    {
        Installations = new PythonInstallations(new PythonOptions(), NullLogger<PythonInstallations>.Instance);
        Manager = new PythonEnvironmentManager(_dir.Combine("envs"), new PythonOptions(), NullLogger<PythonEnvironmentManager>.Instance);
        _installations = new(() => Installations.GetAsync());
        _systemEnvironment = new(() => EnvironmentForAsync(SystemPython));
        _pyenvEnvironment = new(() => EnvironmentForAsync(Pyenv3117));
    }

    public PythonInstallations Installations { get; }

    public PythonEnvironmentManager Manager { get; }

    public string LauncherDirectory => _dir.Combine("launcher");

    /// <summary>Debian's 3.11.2 with apt's flask, fastapi, uvicorn, nbconvert and ipykernel visible through system site packages.</summary>
    public Task<PythonEnvironment> SystemEnvironmentAsync() => _systemEnvironment.Value;

    /// <summary>pyenv's 3.11.7, whose site packages hold Flask 3.1.</summary>
    public Task<PythonEnvironment> PyenvEnvironmentAsync() => _pyenvEnvironment.Value;

    public async Task<PythonInstallation> InstallationAsync(string path)
    {
        var all = await _installations.Value;
        return all.Single(i => i.Path == path);
    }

    public void Dispose() => _dir.Dispose();

    private async Task<PythonEnvironment> EnvironmentForAsync(string path) =>
        await Manager.EnsureAsync(await InstallationAsync(path), requirementsFile: null, _ => { }, default);
}

[CollectionDefinition(Name)]
public sealed class PythonCollection : ICollectionFixture<PythonFixture>
{
    public const string Name = "python";
}
