using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

// Temporary until the limits branch lands.
public abstract class ResourceLimiter
{
    public abstract string Mechanism { get; }
    public abstract IReadOnlyList<string> Notes { get; }
    public abstract LimitScope Create(string name, ResourceLimits limits);
    public abstract void CleanupStale();
    public static ResourceLimiter Detect(ApplicationsOptions options, string nodeName, ILogger logger) => new NoLimits();
    private sealed class NoLimits : ResourceLimiter
    {
        public override string Mechanism => "none";
        public override IReadOnlyList<string> Notes => ["no resource limits"];
        public override LimitScope Create(string name, ResourceLimits limits) => new();
        public override void CleanupStale() { }
    }
}

public sealed class LimitScope : IAsyncDisposable
{
    public LaunchSpec Apply(LaunchSpec spec) => spec;
    public string? ExplainExit(int exitCode) => null;
    public ValueTask DisposeAsync() => ValueTask.CompletedTask;
}
