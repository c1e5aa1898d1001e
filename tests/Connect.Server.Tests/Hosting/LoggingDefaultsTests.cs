using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Connect.Server.Tests.Hosting;

/// <summary>The shipped appsettings.json: quiet framework logs in production, overridable from the command line.</summary>
public sealed class LoggingDefaultsTests
{
    /// <summary>Built, never started: no port is bound, only configuration and services are composed.</summary>
    private static Task<WebApplication> BuildAsync(params string[] extra) =>
        ConnectServer.BuildAsync([$"--Connect:DataDir={Path.Combine(Path.GetTempPath(), "connect-tests", "logging-" + Guid.NewGuid().ToString("N"))}", .. extra]);

    [Fact]
    public async Task Framework_request_logs_and_orleans_are_warning_and_connect_is_information()
    {
        await using var app = await BuildAsync();
        var logging = app.Services.GetRequiredService<ILoggerFactory>();
        Assert.False(logging.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Information));
        Assert.False(logging.CreateLogger("Microsoft.AspNetCore.Routing.EndpointMiddleware").IsEnabled(LogLevel.Information));
        Assert.True(logging.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Warning));
        Assert.False(logging.CreateLogger("Orleans.Runtime.Silo").IsEnabled(LogLevel.Information));
        Assert.True(logging.CreateLogger("Microsoft.Hosting.Lifetime").IsEnabled(LogLevel.Information));
        Assert.True(logging.CreateLogger("Connect.Api.Content.BundleApi").IsEnabled(LogLevel.Information));
    }

    [Fact]
    public async Task Command_line_logging_settings_override_the_shipped_defaults()
    {
        await using var app = await BuildAsync("--Logging:LogLevel:Microsoft.AspNetCore=Debug", "--Logging:LogLevel:Connect=Warning");
        var logging = app.Services.GetRequiredService<ILoggerFactory>();
        Assert.True(logging.CreateLogger("Microsoft.AspNetCore.Hosting.Diagnostics").IsEnabled(LogLevel.Debug));
        Assert.False(logging.CreateLogger("Connect.Api.Content.BundleApi").IsEnabled(LogLevel.Information));
    }
}
