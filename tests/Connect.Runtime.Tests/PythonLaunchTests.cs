using System.Net.Http;
using System.Text.Json;
using Connect.Runtime.Processes;
using Connect.Runtime.Python;
using Microsoft.Extensions.Logging.Abstractions;

namespace Connect.Runtime.Tests;

[Collection(PythonCollection.Name)]
public sealed class PythonLaunchTests : IDisposable
{
    private const string RootPath = "/content/0b1d2f3a-5c6e-4f70-8a9b-c0d1e2f3a4b5";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(30);

    private readonly PythonFixture _python;
    private readonly TestDirectory _dir = new();
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(20) };

    public PythonLaunchTests(PythonFixture python)
    {
        _python = python;
    }

    public void Dispose()
    {
        _http.Dispose();
        _dir.Dispose();
    }

    [Fact]
    public async Task Flask_app_is_served_mounted_at_the_root_path()
    {
        var env = await _python.PyenvEnvironmentAsync();
        _dir.Write("bundle/app.py", """
            import os
            from flask import Flask, request, url_for
            app = Flask(__name__)

            @app.route("/")
            def index():
                return "hello from flask"

            @app.route("/info")
            def info():
                return {"script_root": request.script_root, "url": url_for("info"), "path": request.path,
                        "guid": os.environ.get("CONNECT_CONTENT_GUID"), "cwd": os.getcwd()}
            """);
        var port = LoopbackPorts.GetFreePort();
        var spec = PythonLaunch.ForWsgi(env, _dir.Combine("bundle"), "app:app", port, RootPath,
            new Dictionary<string, string> { ["CONNECT_CONTENT_GUID"] = "guid-1" }, _python.LauncherDirectory);
        Assert.Equal(env.PythonPath, spec.FileName);
        Assert.Equal(_dir.Combine("bundle"), spec.WorkingDirectory);
        Assert.Equal("1", spec.Environment["PYTHONUNBUFFERED"]);

        await using var handle = await StartAsync(spec, port);
        Assert.Equal("hello from flask", await _http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/")));
        using var info = JsonDocument.Parse(await _http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/info")));
        Assert.Equal(RootPath, info.RootElement.GetProperty("script_root").GetString());
        Assert.Equal(RootPath + "/info", info.RootElement.GetProperty("url").GetString());
        Assert.Equal("/info", info.RootElement.GetProperty("path").GetString());
        Assert.Equal("guid-1", info.RootElement.GetProperty("guid").GetString());
        Assert.Equal(_dir.Combine("bundle"), info.RootElement.GetProperty("cwd").GetString());
        Assert.Contains(handle.Log.Tail(50), l => l.Contains("werkzeug", StringComparison.Ordinal));

        await handle.StopAsync(TimeSpan.FromSeconds(10));
        // The launcher turns SIGTERM into a clean shutdown.
        Assert.Equal(0, await handle.Exited);
    }

    [Fact]
    public async Task Module_only_entrypoint_finds_a_factory_and_falls_back_to_wsgiref_without_werkzeug()
    {
        // pyenv's 3.8 has no werkzeug, which exercises the stdlib server and the oldest supported Python.
        var python = await _python.InstallationAsync("/root/.pyenv/versions/3.8.18/bin/python3");
        var env = await _python.Manager.EnsureAsync(python, null, _ => { }, default);
        _dir.Write("bundle/service.py", """
            import json

            def create_app():
                def wsgi(environ, start_response):
                    body = json.dumps({"script_name": environ["SCRIPT_NAME"], "path": environ["PATH_INFO"]}).encode()
                    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
                    return [body]
                return wsgi
            """);
        var port = LoopbackPorts.GetFreePort();
        var spec = PythonLaunch.ForWsgi(env, _dir.Combine("bundle"), "service", port, RootPath + "/", new Dictionary<string, string>(), _python.LauncherDirectory);

        await using var handle = await StartAsync(spec, port);
        using var body = JsonDocument.Parse(await _http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/a/b")));
        Assert.Equal(RootPath, body.RootElement.GetProperty("script_name").GetString());
        Assert.Equal("/a/b", body.RootElement.GetProperty("path").GetString());
        Assert.Contains(handle.Log.Tail(50), l => l.Contains("with wsgiref", StringComparison.Ordinal));
    }

    [Fact]
    public async Task FastApi_app_is_served_by_uvicorn_with_root_path()
    {
        var env = await _python.SystemEnvironmentAsync();
        _dir.Write("bundle/main.py", """
            from fastapi import FastAPI, Request
            app = FastAPI()

            @app.get("/info")
            def info(request: Request):
                return {"root_path": request.scope.get("root_path"), "path": request.url.path, "url": str(request.url_for("info"))}
            """);
        var port = LoopbackPorts.GetFreePort();
        var spec = PythonLaunch.ForAsgi(env, _dir.Combine("bundle"), "main:app", port, RootPath, new Dictionary<string, string>(), _python.LauncherDirectory);

        await using var handle = await StartAsync(spec, port);
        using var info = JsonDocument.Parse(await _http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/info")));
        Assert.Equal(RootPath, info.RootElement.GetProperty("root_path").GetString());
        Assert.EndsWith(RootPath + "/info", info.RootElement.GetProperty("url").GetString(), StringComparison.Ordinal);
        // The docs page FastAPI serves points its OpenAPI URL under the mount.
        var docs = await _http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/docs"));
        Assert.Contains(RootPath + "/openapi.json", docs, StringComparison.Ordinal);

        await handle.StopAsync(TimeSpan.FromSeconds(10));
        Assert.Contains(handle.Log.Tail(100), l => l.Contains("Uvicorn running on http://127.0.0.1:", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("broken:app", "ModuleNotFoundError: No module named 'not_installed_anywhere'")]
    [InlineData("missing_module", "No module named 'missing_module'")]
    [InlineData("noapp", "defines none of app, application, create_app, make_app")]
    [InlineData("noapp:server", "has no attribute 'server'")]
    public async Task Import_failures_exit_non_zero_with_a_clear_message(string entrypoint, string expected)
    {
        var env = await _python.PyenvEnvironmentAsync();
        _dir.Write("bundle/broken.py", "import not_installed_anywhere\napp = None\n");
        _dir.Write("bundle/noapp.py", "x = 1\n");
        var port = LoopbackPorts.GetFreePort();
        var spec = PythonLaunch.ForWsgi(env, _dir.Combine("bundle"), entrypoint, port, "", new Dictionary<string, string>(), _python.LauncherDirectory);

        await using var handle = ProcessLauncher.Start(spec, NullLogger.Instance);
        Assert.False(await LoopbackPorts.WaitUntilAcceptingAsync(port, StartTimeout, handle.Exited, TimeProvider.System, default));
        Assert.Equal(1, await handle.Exited);
        await handle.StopAsync(TimeSpan.FromSeconds(1));
        var log = string.Join('\n', handle.Log.Tail(100));
        Assert.Contains($"could not load the application '{entrypoint}'", log, StringComparison.Ordinal);
        Assert.Contains(expected, log, StringComparison.Ordinal);
    }

    [Fact]
    public void Launcher_is_extracted_once_and_repaired_when_changed()
    {
        var dir = _dir.Combine("launcher");
        var path = PythonLaunch.EnsureLauncher(dir);
        var original = File.ReadAllText(path);
        Assert.Contains("def main(argv)", original, StringComparison.Ordinal);
        File.WriteAllText(path, "tampered");
        Assert.Equal(path, PythonLaunch.EnsureLauncher(dir));
        Assert.Equal(original, File.ReadAllText(path));
        Assert.Single(Directory.EnumerateFiles(dir));
    }

    private async Task<ProcessHandle> StartAsync(LaunchSpec spec, int port)
    {
        var handle = ProcessLauncher.Start(spec, NullLogger.Instance);
        if (!await LoopbackPorts.WaitUntilAcceptingAsync(port, StartTimeout, handle.Exited, TimeProvider.System, default))
        {
            await handle.DisposeAsync();
            Assert.Fail("The app did not start:\n" + string.Join('\n', handle.Log.Tail(100)));
        }

        return handle;
    }
}
