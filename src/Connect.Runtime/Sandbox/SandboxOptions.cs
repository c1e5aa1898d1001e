namespace Connect.Runtime.Sandbox;

public enum SandboxMode
{
    /// <summary>Use bubblewrap when it is installed; otherwise run unsandboxed and say so at start.</summary>
    Auto,
    /// <summary>Always sandbox; refuse to start when bubblewrap is missing.</summary>
    Required,
    /// <summary>Never sandbox (development only).</summary>
    Disabled,
}

/// <summary>How content processes are confined, config section "Sandbox".</summary>
public sealed class SandboxOptions
{
    /// <summary>Auto, Required or Disabled. Default Auto.</summary>
    public SandboxMode Mode { get; set; } = SandboxMode.Auto;

    /// <summary>The bubblewrap executable. Default /usr/bin/bwrap.</summary>
    public string Bubblewrap { get; set; } = "/usr/bin/bwrap";

    public bool Available => File.Exists(Bubblewrap);

    public bool Active => Mode switch
    {
        SandboxMode.Disabled => false,
        SandboxMode.Required => true,
        _ => Available,
    };

    public IEnumerable<string> Validate()
    {
        if (Mode == SandboxMode.Required && !Available)
        {
            yield return $"Sandbox:Mode is Required but '{Bubblewrap}' does not exist (install bubblewrap).";
        }
    }
}
