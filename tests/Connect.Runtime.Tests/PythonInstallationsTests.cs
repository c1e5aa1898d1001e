using Connect.Runtime.Python;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

public sealed class PythonInstallationsTests
{
    private static readonly PythonInstallation[] Available =
    [
        new("/p/3.8.18", "3.8.18"),
        new("/p/3.11.2", "3.11.2"),
        new("/p/3.11.7", "3.11.7"),
        new("/p/3.11.9", "3.11.9"),
        new("/p/3.12.1", "3.12.1"),
    ];

    [Theory]
    [InlineData("3.11.7", "3.11.7")]
    [InlineData("3.11.6", "3.11.7")]
    [InlineData("3.11.3", "3.11.2")]
    [InlineData("3.11.8", "3.11.9")] // equally far from 3.11.7 and 3.11.9: the higher wins
    [InlineData("3.11.20", "3.11.9")]
    [InlineData("3.11.0", "3.11.2")]
    [InlineData("3.11", "3.11.9")]
    [InlineData("3.11.6rc1", "3.11.7")]
    [InlineData("3.12.5", "3.12.1")]
    [InlineData("3.8.1", "3.8.18")]
    [InlineData(null, "3.12.1")]
    [InlineData("", "3.12.1")]
    [InlineData("  ", "3.12.1")]
    [InlineData("3.10.13", null)]
    [InlineData("2.7.18", null)]
    [InlineData("4.11.7", null)]
    [InlineData("latest", null)]
    public void Match_follows_the_same_minor_closest_patch_rule(string? requested, string? expected)
    {
        Assert.Equal(expected, PythonInstallations.Match(Available, requested)?.Version);
    }

    [Fact]
    public void Match_on_nothing_is_null()
    {
        Assert.Null(PythonInstallations.Match([], null));
        Assert.Null(PythonInstallations.Match([], "3.11.7"));
    }

    [Fact]
    public async Task Discovery_finds_the_host_interpreters_once()
    {
        var installations = new PythonInstallations(new PythonOptions(), NullLogger<PythonInstallations>.Instance);
        var found = await installations.GetAsync();

        Assert.Contains(found, i => i.Path == PythonFixture.SystemPython && i.Version == "3.11.2");
        Assert.Contains(found, i => i.Version == "3.11.7");
        Assert.DoesNotContain(found, i => i.Version.StartsWith("3.7.", StringComparison.Ordinal) || i.Version.StartsWith("2.", StringComparison.Ordinal));
        Assert.Equal(found.Count, found.Select(i => i.Version).Distinct().Count());
        Assert.Equal(found.OrderBy(i => Version.Parse(i.Version)).ToList(), found);
        Assert.All(found, i => Assert.True(File.Exists(i.Path), i.Path));
        Assert.Same(found, await installations.GetAsync());
    }

    [Fact]
    public async Task Configured_executables_replace_discovery_and_broken_ones_are_skipped()
    {
        var options = new PythonOptions { Executables = [PythonFixture.Pyenv3117, "/nonexistent/python3", "/root/.pyenv/versions/3.7.16/bin/python3"] };
        var found = await new PythonInstallations(options, NullLogger<PythonInstallations>.Instance).GetAsync();
        Assert.Equal([new PythonInstallation(PythonFixture.Pyenv3117, "3.11.7")], found);
    }

    [Fact]
    public void Options_validation_reports_every_problem()
    {
        Assert.Empty(new PythonOptions().Validate());
        Assert.Empty(new PythonOptions { Executables = [PythonFixture.SystemPython], PackageIndex = "https://pypi.example.com/simple" }.Validate());

        var problems = new PythonOptions
        {
            Executables = ["/nonexistent/python3", "python3"],
            PackageIndex = "not a url",
            FindLinks = ["/nonexistent/wheels"],
            NoIndex = true,
            InstallTimeoutSeconds = 0,
        }.Validate().ToList();

        Assert.Contains(problems, p => p.Contains("/nonexistent/python3", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("'python3' must be an absolute path", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("not a url", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("/nonexistent/wheels", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("InstallTimeoutSeconds", StringComparison.Ordinal));
        Assert.Contains(problems, p => p.Contains("NoIndex", StringComparison.Ordinal));
    }
}
