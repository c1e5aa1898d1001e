using System.Security.Cryptography;
using System.Text;
using Connect.Core.Bundles;

namespace Connect.Core.Tests.Bundles;

public sealed class ManifestValidatorTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly string _bundle;

    public ManifestValidatorTests()
    {
        _bundle = _temp.Combine("bundle");
        Directory.CreateDirectory(_bundle);
        // Python cases use entrypoint "app", which must name a module the bundle holds.
        File.WriteAllText(Path.Combine(_bundle, "app.py"), "app = None\n");
    }

    public void Dispose() => _temp.Dispose();

    private string Write(string relativePath, string content)
    {
        var path = Path.Combine(_bundle, relativePath);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return Convert.ToHexStringLower(MD5.HashData(Encoding.UTF8.GetBytes(content)));
    }

    private static Dictionary<string, string> Files(params (string Path, string Md5)[] files) =>
        files.ToDictionary(f => f.Path, f => f.Md5, StringComparer.Ordinal);

    [Fact]
    public void Valid_fastapi_bundle_has_no_problems()
    {
        var app = Write("app.py", "from fastapi import FastAPI\napp = FastAPI()\n");
        var reqs = Write("requirements.txt", "fastapi\n");
        var nested = Write("pkg/util.py", "X = 1\n");
        var manifest = new Manifest
        {
            AppMode = "python-fastapi",
            Entrypoint = "app",
            Files = Files(("app.py", app), ("requirements.txt", reqs), ("pkg/util.py", nested)),
        };

        Assert.Empty(ManifestValidator.Validate(manifest, _bundle));
    }

    [Fact]
    public void Checksums_compare_case_insensitively()
    {
        var app = Write("app.py", "print('hi')\n");
        var manifest = new Manifest { AppMode = "python-api", Entrypoint = "app", Files = Files(("app.py", app.ToUpperInvariant())) };

        Assert.Empty(ManifestValidator.Validate(manifest, _bundle));
    }

    [Fact]
    public void Windows_style_manifest_paths_match_extracted_files()
    {
        var nested = Write("pkg/util.py", "X = 1\n");
        var manifest = new Manifest { AppMode = "python-api", Entrypoint = "app", Files = Files(("pkg\\util.py", nested)) };

        Assert.Empty(ManifestValidator.Validate(manifest, _bundle));
    }

    [Fact]
    public void Reports_missing_file()
    {
        var app = Write("app.py", "x");
        var manifest = new Manifest
        {
            AppMode = "python-fastapi",
            Entrypoint = "app",
            Files = Files(("app.py", app), ("requirements.txt", "e4d909c290d0fb1ca068ffaddf22cbd0")),
        };

        var problem = Assert.Single(ManifestValidator.Validate(manifest, _bundle));
        Assert.Contains("'requirements.txt'", problem);
        Assert.Contains("missing", problem);
    }

    [Fact]
    public void Reports_checksum_mismatch()
    {
        Write("app.py", "print('tampered')\n");
        var expected = Convert.ToHexStringLower(MD5.HashData("print('original')\n"u8));
        var manifest = new Manifest { AppMode = "python-api", Entrypoint = "app", Files = Files(("app.py", expected)) };

        var problem = Assert.Single(ManifestValidator.Validate(manifest, _bundle));
        Assert.Contains("'app.py'", problem);
        Assert.Contains("checksum", problem);
        Assert.Contains(expected, problem);
    }

    [Fact]
    public void Checksum_of_large_file_is_correct()
    {
        var content = new byte[3 * 1024 * 1024 + 17];
        new Random(7).NextBytes(content);
        File.WriteAllBytes(Path.Combine(_bundle, "model.bin"), content);
        var manifest = new Manifest
        {
            AppMode = "python-api",
            Entrypoint = "app",
            Files = Files(("model.bin", Convert.ToHexStringLower(MD5.HashData(content)))),
        };

        Assert.Empty(ManifestValidator.Validate(manifest, _bundle));
    }

    [Theory]
    [InlineData("python-api")]
    [InlineData("python-fastapi")]
    [InlineData("python-dash")]
    [InlineData("python-streamlit")]
    [InlineData("python-bokeh")]
    [InlineData("python-shiny")]
    [InlineData("python-gradio")]
    [InlineData("python-panel")]
    public void Python_modes_need_an_entrypoint(string mode)
    {
        var problem = Assert.Single(ManifestValidator.Validate(new Manifest { AppMode = mode, Entrypoint = " " }, _bundle));

        Assert.Contains("metadata.entrypoint is required", problem);
    }

    [Fact]
    public void Notebook_entrypoint_must_be_an_existing_ipynb()
    {
        Write("notebook.ipynb", "{}");

        Assert.Empty(ManifestValidator.Validate(new Manifest { AppMode = "jupyter-static", Entrypoint = "notebook.ipynb" }, _bundle));
        Assert.Contains("does not exist", Assert.Single(ManifestValidator.Validate(
            new Manifest { AppMode = "jupyter-static", Entrypoint = "other.ipynb" }, _bundle)));
        Assert.Contains("is not a Jupyter notebook", Assert.Single(ManifestValidator.Validate(
            new Manifest { AppMode = "jupyter-static", Entrypoint = "app.py" }, _bundle)));
        Assert.Contains("must name the notebook", Assert.Single(ManifestValidator.Validate(
            new Manifest { AppMode = "jupyter-static" }, _bundle)));
    }

    [Fact]
    public void Static_without_primary_html_or_index_is_a_problem()
    {
        Write("page.html", "<p>hi</p>");

        var problem = Assert.Single(ManifestValidator.Validate(new Manifest { AppMode = "static" }, _bundle));

        Assert.Contains("primary_html", problem);
    }

    [Fact]
    public void Static_without_primary_html_accepts_root_index()
    {
        Write("index.html", "<p>hi</p>");

        Assert.Empty(ManifestValidator.Validate(new Manifest { AppMode = "static" }, _bundle));
    }

    [Fact]
    public void Static_primary_html_must_exist()
    {
        Write("index.html", "<p>hi</p>");

        Assert.Empty(ManifestValidator.Validate(new Manifest { AppMode = "static", PrimaryHtml = "index.html" }, _bundle));
        Assert.Empty(ManifestValidator.Validate(new Manifest { AppMode = "static", Entrypoint = "index.html" }, _bundle));
        var problem = Assert.Single(ManifestValidator.Validate(new Manifest { AppMode = "static", PrimaryHtml = "report.html" }, _bundle));
        Assert.Contains("metadata.primary_html 'report.html' does not exist", problem);
    }

    [Theory]
    [InlineData("../outside.txt")]
    [InlineData("sub/../../outside.txt")]
    [InlineData("/etc/hostname")]
    [InlineData("C:/Windows/win.ini")]
    [InlineData("..\\outside.txt")]
    public void Listed_paths_may_not_escape_the_bundle(string path)
    {
        // A real file outside the bundle with a matching checksum must still not count as part of the bundle.
        var outside = _temp.Combine("outside.txt");
        File.WriteAllText(outside, "secret");
        var md5 = Convert.ToHexStringLower(MD5.HashData("secret"u8));
        var manifest = new Manifest { AppMode = "python-api", Entrypoint = "app", Files = Files((path, md5)) };

        var problem = Assert.Single(ManifestValidator.Validate(manifest, _bundle));

        Assert.Contains($"'{path}'", problem);
    }

    [Fact]
    public void Static_primary_html_may_not_escape_the_bundle()
    {
        File.WriteAllText(_temp.Combine("index.html"), "<p>outside</p>");

        var problem = Assert.Single(ManifestValidator.Validate(new Manifest { AppMode = "static", PrimaryHtml = "../index.html" }, _bundle));

        Assert.Contains("leaves the bundle directory", problem);
    }

    [Fact]
    public void Listed_symlink_is_a_problem()
    {
        File.WriteAllText(_temp.Combine("target.txt"), "secret");
        File.CreateSymbolicLink(Path.Combine(_bundle, "link.txt"), _temp.Combine("target.txt"));
        var md5 = Convert.ToHexStringLower(MD5.HashData("secret"u8));
        var manifest = new Manifest { AppMode = "python-api", Entrypoint = "app", Files = Files(("link.txt", md5)) };

        Assert.Contains("symbolic link", Assert.Single(ManifestValidator.Validate(manifest, _bundle)));
    }

    [Fact]
    public void Reports_every_problem_at_once()
    {
        Write("app.py", "changed");
        var manifest = new Manifest
        {
            AppMode = "python-dash",
            Files = Files(("app.py", "00000000000000000000000000000000"), ("gone.py", "00000000000000000000000000000000"), ("sub", "00000000000000000000000000000000")),
        };
        Directory.CreateDirectory(Path.Combine(_bundle, "sub"));

        var problems = ManifestValidator.Validate(manifest, _bundle);

        Assert.Equal(4, problems.Count);
        Assert.Contains(problems, p => p.Contains("metadata.entrypoint is required"));
        Assert.Contains(problems, p => p.Contains("'app.py'") && p.Contains("checksum"));
        Assert.Contains(problems, p => p.Contains("'gone.py'") && p.Contains("missing"));
        Assert.Contains(problems, p => p.Contains("'sub'") && p.Contains("directory"));
    }

    [Fact]
    public void Missing_bundle_directory_is_a_problem()
    {
        var problems = ManifestValidator.Validate(new Manifest { AppMode = "static" }, _temp.Combine("nope"));

        Assert.Contains("does not exist", Assert.Single(problems));
    }
}
