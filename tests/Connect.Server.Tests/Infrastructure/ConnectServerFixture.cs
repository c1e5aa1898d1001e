using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Xunit.Abstractions;

namespace Connect.Server.Tests.Infrastructure;

/// <summary>
/// A real Connect node for a test class: Orleans silo, Kestrel on a free loopback port, a fresh data
/// directory, and an administrator key obtained through the bootstrap endpoint as rsconnect does.
/// </summary>
public class ConnectServerFixture : IAsyncLifetime
{
    private WebApplication? _app;
    private string[] _args = [];

    public string DataDir { get; } = Path.Combine(Path.GetTempPath(), "connect-tests", Guid.NewGuid().ToString("N"));
    public string BootstrapSecretFile => Path.Combine(DataDir, "..", Path.GetFileName(DataDir) + ".bootstrap");
    public byte[] BootstrapSecret { get; } = RandomNumberGenerator.GetBytes(32);
    public Uri BaseAddress { get; private set; } = null!;
    public int SiloPort { get; private set; }
    public string AdminKey { get; private set; } = "";
    public HttpClient Anonymous { get; private set; } = null!;
    public HttpClient Admin { get; private set; } = null!;

    /// <summary>Extra configuration for a test class (e.g. scheduler defaults).</summary>
    protected virtual IEnumerable<string> ExtraArguments => [];

    public async Task InitializeAsync()
    {
        Directory.CreateDirectory(DataDir);
        await File.WriteAllTextAsync(BootstrapSecretFile, Convert.ToBase64String(BootstrapSecret));
        var port = FreePort();
        SiloPort = FreePort();
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
        string[] args =
        [
            $"--urls={BaseAddress.ToString().TrimEnd('/')}",
            $"--Connect:DataDir={DataDir}",
            $"--Orleans:SiloPort={SiloPort}",
            $"--Bootstrap:SecretKeyFile={BootstrapSecretFile}",
            "--Logging:LogLevel:Default=Warning",
            "--Logging:LogLevel:Connect=Information",
            .. ExtraArguments,
        ];
        _args = args;
        _app = await ConnectServer.BuildAsync(args);
        await _app.StartAsync();
        Anonymous = NewClient(null);
        using var bootstrap = new HttpRequestMessage(HttpMethod.Post, "__api__/v1/experimental/bootstrap");
        bootstrap.Headers.Authorization = new AuthenticationHeaderValue("Connect-Bootstrap", BootstrapJwt.Create(BootstrapSecret, DateTimeOffset.UtcNow));
        using var response = await Anonymous.SendAsync(bootstrap);
        response.EnsureSuccessStatusCode();
        AdminKey = (await response.Content.ReadFromJsonAsync<JsonObject>())!["api_key"]!.GetValue<string>();
        Admin = NewClient(AdminKey);
    }

    /// <summary>Stops the node and starts a new one on the same data directory, address and silo port.</summary>
    public async Task RestartAsync(bool graceful = true)
    {
        if (_app is not null)
        {
            await _app.StopAsync(graceful ? CancellationToken.None : new CancellationToken(canceled: true));
            await _app.DisposeAsync();
        }
        _app = await ConnectServer.BuildAsync(_args);
        await _app.StartAsync();
    }

    public HttpClient NewClient(string? key, bool followRedirects = false)
    {
        var client = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = followRedirects, UseCookies = false }) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(3) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Key", key);
        }
        return client;
    }

    /// <summary>Creates a user with the server's admin command line and returns a key for it.</summary>
    public async Task<string> CreateUserWithKeyAsync(string username, string role)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        var code = await AdminCommands.RunAsync(["create-user", "--username", username, "--role", role, $"--Connect:DataDir={DataDir}"], output, error);
        Assert.True(code == 0, error.ToString());
        output = new StringWriter();
        code = await AdminCommands.RunAsync(["create-key", "--username", username, $"--Connect:DataDir={DataDir}"], output, error);
        Assert.True(code == 0, error.ToString());
        return output.ToString().Trim();
    }

    public async Task DisposeAsync()
    {
        Admin?.Dispose();
        Anonymous?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
        }
        try
        {
            Directory.Delete(DataDir, recursive: true);
            File.Delete(BootstrapSecretFile);
        }
        catch (IOException)
        {
            // A process that is still exiting may hold a file; the temp directory is cleaned by the OS eventually.
        }
    }

    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}

/// <summary>Makes the HS256 token rsconnect-python's bootstrap sends.</summary>
public static class BootstrapJwt
{
    public static string Create(byte[] secret, DateTimeOffset now, string issuer = "rsconnect-python", string audience = "rsconnect",
        string scope = "bootstrap", TimeSpan? lifetime = null)
    {
        static string B64(byte[] b) => Convert.ToBase64String(b).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        var header = B64(JsonSerializer.SerializeToUtf8Bytes(new { alg = "HS256", typ = "JWT" }));
        var payload = B64(JsonSerializer.SerializeToUtf8Bytes(new
        {
            iss = issuer,
            aud = audience,
            scope,
            iat = now.ToUnixTimeSeconds(),
            exp = (now + (lifetime ?? TimeSpan.FromMinutes(15))).ToUnixTimeSeconds(),
        }));
        var signature = B64(HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(header + "." + payload)));
        return $"{header}.{payload}.{signature}";
    }
}
