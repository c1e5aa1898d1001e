using System.Text;
using Connect.Core.Bundles;

namespace Connect.Core.Tests.Bundles;

public sealed class ManifestParserTests
{
    private const string FastApiManifest = """
        {
          "version": 1,
          "locale": "en_US.UTF-8",
          "metadata": {
            "appmode": "python-fastapi",
            "entrypoint": "app",
            "primary_rmd": null,
            "primary_html": null,
            "content_category": null,
            "has_parameters": false
          },
          "python": {
            "version": "3.11.7",
            "package_manager": {"name": "pip", "version": "23.2.1", "package_file": "requirements.txt", "allow_uv": true}
          },
          "environment": {
            "python": {"requires": ">=3.10"},
            "image": "ghcr.io/x:tag",
            "environment_management": {"python": false, "r": false}
          },
          "files": {
            "requirements.txt": {"checksum": "E4B7C74D0A2A9B4B35D1AB7E3B4C0F11"},
            "app.py": {"checksum": "5647db9e2b1c4e7fa3d0b9a1c2e3f4a5"}
          }
        }
        """;

    private const string StaticManifest = """
        {
          "version": 1,
          "metadata": {"appmode": "static", "primary_html": "index.html", "entrypoint": "index.html"},
          "files": {"index.html": {"checksum": "0cc175b9c0f1b6a831c399e269772661"}}
        }
        """;

    private const string NotebookManifest = """
        {
          "version": 1,
          "locale": "en_US.UTF-8",
          "metadata": {"appmode": "jupyter-static", "entrypoint": "notebook.ipynb"},
          "python": {"version": "3.12.1", "package_manager": {"name": "pip", "version": "24.0"}},
          "jupyter": {"hide_all_input": true, "hide_tagged_input": false},
          "quarto": {"version": "1.5.0", "engines": ["jupyter"]},
          "packages": {"ggplot2": {"Source": "CRAN", "description": {"Version": "3.4.0"}}},
          "some_future_field": [1, 2, {"x": null}],
          "files": {"notebook.ipynb": {"checksum": "9e107d9d372bb6826bd81d3542a419d6"}, "requirements.txt": {"checksum": "e4d909c290d0fb1ca068ffaddf22cbd0"}}
        }
        """;

    private static Manifest Parse(string json) => ManifestParser.Parse(Encoding.UTF8.GetBytes(json));

    [Fact]
    public void Parses_fastapi_manifest()
    {
        var manifest = Parse(FastApiManifest);

        Assert.Equal(1, manifest.Version);
        Assert.Equal("python-fastapi", manifest.AppMode);
        Assert.Equal("app", manifest.Entrypoint);
        Assert.Null(manifest.PrimaryHtml);
        Assert.Equal("", manifest.ContentCategory);
        Assert.Equal("3.11.7", manifest.PythonVersion);
        Assert.Equal(">=3.10", manifest.PythonRequires);
        Assert.Equal("pip", manifest.PythonPackageManager);
        Assert.Equal("requirements.txt", manifest.PythonPackageFile);
        Assert.False(manifest.HideAllInput);
        Assert.Equal(2, manifest.Files.Count);
        Assert.Equal("e4b7c74d0a2a9b4b35d1ab7e3b4c0f11", manifest.Files["requirements.txt"]);
        Assert.Equal("5647db9e2b1c4e7fa3d0b9a1c2e3f4a5", manifest.Files["app.py"]);
        Assert.False(manifest.Files.ContainsKey("APP.PY"));
    }

    [Fact]
    public void Parses_static_manifest_without_python_block()
    {
        var manifest = Parse(StaticManifest);

        Assert.Equal("static", manifest.AppMode);
        Assert.Equal("index.html", manifest.PrimaryHtml);
        Assert.Equal("index.html", manifest.Entrypoint);
        Assert.Null(manifest.PythonVersion);
        Assert.Null(manifest.PythonPackageFile);
        Assert.Null(manifest.PythonPackageManager);
        Assert.Null(manifest.PythonRequires);
        Assert.Single(manifest.Files);
    }

    [Fact]
    public void Parses_notebook_manifest_ignoring_unknown_fields()
    {
        var manifest = Parse(NotebookManifest);

        Assert.Equal("jupyter-static", manifest.AppMode);
        Assert.Equal("notebook.ipynb", manifest.Entrypoint);
        Assert.Equal("3.12.1", manifest.PythonVersion);
        Assert.Equal("requirements.txt", manifest.PythonPackageFile);
        Assert.True(manifest.HideAllInput);
        Assert.False(manifest.HideTaggedInput);
        Assert.Equal(2, manifest.Files.Count);
    }

    [Fact]
    public void Python_block_without_package_manager_defaults_package_file()
    {
        var manifest = Parse("""{"version":1,"metadata":{"appmode":"python-api","entrypoint":"app:app"},"python":{"version":"3.10.0"}}""");

        Assert.Equal("requirements.txt", manifest.PythonPackageFile);
        Assert.Null(manifest.PythonPackageManager);
        Assert.Empty(manifest.Files);
    }

    [Fact]
    public void Keeps_site_content_category_and_custom_package_file()
    {
        var manifest = Parse("""
            {"version":1,"metadata":{"appmode":"quarto-static","entrypoint":"_quarto.yml","content_category":"site"},
             "python":{"version":"3.11.0","package_manager":{"name":"uv","package_file":"reqs/prod.txt"}}}
            """);

        Assert.Equal("site", manifest.ContentCategory);
        Assert.Equal("reqs/prod.txt", manifest.PythonPackageFile);
        Assert.Equal("uv", manifest.PythonPackageManager);
    }

    [Fact]
    public void Accepts_utf8_byte_order_mark()
    {
        var bytes = Encoding.UTF8.GetPreamble().Concat(Encoding.UTF8.GetBytes(StaticManifest)).ToArray();

        Assert.Equal("static", ManifestParser.Parse(bytes).AppMode);
    }

    [Fact]
    public void Maps_legacy_nodejs_mode()
    {
        Assert.Equal("nodejs", Parse("""{"version":1,"metadata":{"appmode":"nodejs-api"}}""").AppMode);
    }

    [Theory]
    [InlineData("this is not json", "not valid JSON")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"}""", "not valid JSON")]
    [InlineData("[1,2,3]", "top level must be a JSON object")]
    [InlineData("""{"version":1}""", "metadata is missing")]
    [InlineData("""{"version":1,"metadata":null}""", "metadata is missing")]
    [InlineData("""{"version":1,"metadata":"static"}""", "metadata must be an object")]
    [InlineData("""{"version":1,"metadata":{"entrypoint":"app"}}""", "metadata.appmode is missing")]
    [InlineData("""{"version":1,"metadata":{"appmode":12}}""", "metadata.appmode must be a string, got a number")]
    [InlineData("""{"version":1,"metadata":{"appmode":"flask"}}""", "metadata.appmode 'flask' is not a known app mode")]
    [InlineData("""{"version":1,"metadata":{"appmode":"unknown"}}""", "metadata.appmode 'unknown' cannot be deployed")]
    [InlineData("""{"version":"1","metadata":{"appmode":"static"}}""", "version must be an integer")]
    [InlineData("""{"version":1.5,"metadata":{"appmode":"static"}}""", "version must be an integer")]
    [InlineData("""{"version":1,"metadata":{"appmode":"python-api","entrypoint":7}}""", "metadata.entrypoint must be a string")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"python":"3.11"}""", "python must be an object")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"python":{"version":3.11}}""", "python.version must be a string")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":{"python":{"requires":[">=3"]}}}""", "environment.python.requires must be a string")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"jupyter":{"hide_all_input":"yes"}}""", "jupyter.hide_all_input must be true or false")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":{"environment_management":false}}""", "environment.environment_management must be an object, got a boolean")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":{"environment_management":{"python":"false"}}}""", "environment.environment_management.python must be true or false, got a string")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":{"environment_management":{"python":0}}}""", "environment.environment_management.python must be true or false, got a number")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":{"environment_management":{"r":"no"}}}""", "environment.environment_management.r must be true or false, got a string")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":{"image":42}}""", "environment.image must be a string, got a number")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":{"image":" "}}""", "environment.image must name an image")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"environment":[]}""", "environment must be an object, got an array")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"files":["a"]}""", "files must be an object")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"files":{"a":"0cc175b9c0f1b6a831c399e269772661"}}""", "files[\"a\"] must be an object")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"files":{"a":{}}}""", "files[\"a\"].checksum is missing")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"files":{"a":{"checksum":42}}}""", "files[\"a\"].checksum must be a string")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"files":{"a":{"checksum":"xyz"}}}""", "not an MD5 hex digest")]
    [InlineData("""{"version":1,"metadata":{"appmode":"static"},"files":{"a":{"checksum":"0cc175b9c0f1b6a831c399e269772661"},"a":{"checksum":"0cc175b9c0f1b6a831c399e269772661"}}}""", "listed more than once")]
    public void Rejects_bad_manifests_with_clear_message(string json, string expected)
    {
        var ex = Assert.Throws<ManifestException>(() => Parse(json));

        Assert.StartsWith("manifest.json", ex.Message);
        Assert.Contains(expected, ex.Message);
    }

    [Fact]
    public void Reads_environment_management_and_image_as_rsconnect_writes_them()
    {
        var manifest = Parse(FastApiManifest);

        Assert.False(manifest.PythonEnvironmentManagement);
        Assert.False(manifest.REnvironmentManagement);
        Assert.Equal("ghcr.io/x:tag", manifest.EnvironmentImage);
        Assert.Equal(">=3.10", manifest.PythonRequires);
    }

    [Fact]
    public void Environment_management_absent_or_null_is_left_to_the_server()
    {
        Assert.Null(Parse(NotebookManifest).PythonEnvironmentManagement);
        Assert.Null(Parse(NotebookManifest).EnvironmentImage);

        var partial = Parse("""{"version":1,"metadata":{"appmode":"python-api"},"environment":{"environment_management":{"python":true,"r":null},"image":null}}""");
        Assert.True(partial.PythonEnvironmentManagement);
        Assert.Null(partial.REnvironmentManagement);
        Assert.Null(partial.EnvironmentImage);
    }

    [Fact]
    public void ParseFile_reads_from_disk()
    {
        using var temp = new TempDirectory();
        var path = temp.Combine("manifest.json");
        File.WriteAllText(path, FastApiManifest);

        Assert.Equal("python-fastapi", ManifestParser.ParseFile(path).AppMode);
    }

    [Fact]
    public void ParseFile_reports_missing_manifest()
    {
        using var temp = new TempDirectory();

        var ex = Assert.Throws<ManifestException>(() => ManifestParser.ParseFile(temp.Combine("manifest.json")));

        Assert.Contains("manifest.json is missing", ex.Message);
    }
}
