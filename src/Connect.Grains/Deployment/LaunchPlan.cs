using System.Text.Json;

namespace Connect.Grains.Deployment;

/// <summary>
/// How to run one deployed bundle, decided once at deploy time (interpreter, environment, entry point) so that
/// starting a process later is quick and never repeats environment work.
/// </summary>
public sealed record LaunchPlan(string AppMode, string? Entrypoint, string? PythonPath, string? EnvironmentDirectory, string? PythonVersion)
{
    /// <summary>The interpreter installation behind the environment when it is outside /usr (mounted read-only for the app).</summary>
    public string? PythonPrefix { get; init; }

    /// <summary>
    /// The container image the manifest asked for (environment.image). Recorded for off-host execution; processes on
    /// this host ignore it.
    /// </summary>
    public string? Image { get; init; }

    /// <summary>False when the content runs against its interpreter's own packages (environment management off).</summary>
    public bool EnvironmentManaged { get; init; } = true;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static async Task<LaunchPlan?> ReadAsync(string path, CancellationToken ct)
    {
        if (!File.Exists(path))
        {
            return null;
        }
        await using var stream = File.OpenRead(path);
        return await JsonSerializer.DeserializeAsync<LaunchPlan>(stream, Json, ct);
    }

    public async Task WriteAsync(string path, CancellationToken ct)
    {
        // Written to a temp file and renamed so a reader never sees half a plan.
        var temp = path + ".tmp-" + Guid.NewGuid().ToString("N");
        await using (var stream = File.Create(temp))
        {
            await JsonSerializer.SerializeAsync(stream, this, Json, ct);
        }
        File.Move(temp, path, overwrite: true);
    }
}
