using Connect.Runtime.Processes;
using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

/// <summary>Content cannot run here: the sandbox it needs is missing. The message says what to install or set.</summary>
public sealed class SandboxUnavailableException(string message) : Exception(message);

/// <summary>A launch spec wrapped in the sandbox, with the resource-limit scope that must outlive the process.</summary>
public sealed class SandboxedLaunch(LaunchSpec spec, LimitScope? limits) : IAsyncDisposable
{
    private readonly List<string> _scratch = [];
    private int _disposed;

    public LaunchSpec Spec { get; } = spec;

    /// <summary>Why the sandbox ended the process (e.g. its memory limit), when it did; null otherwise.</summary>
    public string? ExplainExit(int exitCode) => limits?.ExplainExit(exitCode);

    /// <summary>A directory made for this process only (its socket directory): removed with it.</summary>
    public SandboxedLaunch RemoveAfterwards(string directory)
    {
        _scratch.Add(directory);
        return this;
    }

    /// <summary>Kills whatever is left in the limit scope, removes it and the process's scratch directories.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        if (limits is not null)
        {
            await limits.DisposeAsync().ConfigureAwait(false);
        }
        foreach (var directory in _scratch)
        {
            try
            {
                if (Directory.Exists(directory))
                {
                    Directory.Delete(directory, recursive: true);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Swept at the next start; nothing else uses the name.
            }
        }
    }
}

/// <summary>
/// The node's sandbox for publisher code: app processes, renders and environment builds all run through it. It
/// finds out at start what this host allows (bubblewrap with user and PID namespaces, the run-as user, the network
/// guard, resource limits) and wraps each launch as <c>[join limit scope] → setpriv (run-as user) → bwrap → program</c>.
/// </summary>
public sealed partial class ContentSandbox
{
    private readonly SandboxOptions _options;
    private readonly ApplicationsOptions _applications;
    private readonly ILogger<ContentSandbox> _logger;
    private List<string> _hidden = [];

    public ContentSandbox(SandboxOptions options, ApplicationsOptions applications, ILogger<ContentSandbox> logger)
    {
        _options = options;
        _applications = applications;
        _logger = logger;
    }

    public SandboxMode Mode => _options.Mode;

    /// <summary>The unprivileged user content runs as; null when the server is not root (content runs as the server's user).</summary>
    public RunAsUser? User { get; private set; }

    /// <summary>Why content cannot run on this node; null when it can.</summary>
    public string? Unavailable { get; private set; }

    /// <summary>Protections that hold on this node, for the start log.</summary>
    public IReadOnlyList<string> Protections { get; private set; } = [];

    /// <summary>Protections this host cannot give, for the start log and the README.</summary>
    public IReadOnlyList<string> Gaps { get; private set; } = [];

    public ResourceLimiter? Limiter { get; private set; }

    /// <summary>
    /// Finds out what this host allows and sets up the run-as user, the network guard and the limit root. Returns the
    /// problems that must stop the server: none in Auto mode (content is refused instead), all of them in Required mode.
    /// </summary>
    public IReadOnlyList<string> Initialize(string nodeName, int siloPort, IReadOnlyCollection<int> clusterPorts, IEnumerable<string> hidden, string? dataDirectory = null)
    {
        _hidden = [.. hidden.Concat(_options.HiddenPaths).Select(p => Path.GetFullPath(p).TrimEnd('/')).Where(p => p.Length > 0).Distinct(StringComparer.Ordinal)];
        if (_options.Mode == SandboxMode.Disabled)
        {
            Gaps = ["Sandbox:Mode=Disabled: content runs unsandboxed, as the server's user, and can read everything the server can"];
            LogDisabled(_logger);
            return [];
        }
        var missing = new List<string>();
        var gaps = new List<string>();
        var protections = new List<string>();
        if (!File.Exists(_options.Bubblewrap))
        {
            missing.Add($"bubblewrap is not installed at {_options.Bubblewrap} (Debian: apt-get install bubblewrap)");
        }
        if (RunAsUser.ServerIsRoot)
        {
            if (string.IsNullOrWhiteSpace(_applications.RunAs))
            {
                missing.Add("the server runs as root and Applications:RunAs is empty: content would run as root");
            }
            else
            {
                User = RunAsUser.Find(_applications.RunAs);
                if (User is null && RunAsUser.Create(_applications.RunAs) is { } failure)
                {
                    missing.Add($"the run-as user '{_applications.RunAs}' does not exist and could not be created: {failure}");
                }
                User ??= RunAsUser.Find(_applications.RunAs);
                if (User is { Uid: 0 } or { Gid: 0 })
                {
                    missing.Add($"the run-as user '{_applications.RunAs}' is root");
                    User = null;
                }
            }
            if (!File.Exists(_options.Setpriv))
            {
                missing.Add($"setpriv (util-linux) is not installed at {_options.Setpriv}");
            }
        }
        else
        {
            gaps.Add("the server does not run as root: content runs as the server's own user, inside its sandbox");
        }
        if (User is { } runAs && dataDirectory is not null && !runAs.CanExecute(dataDirectory))
        {
            // bubblewrap runs as the run-as user and must reach the bundles and environments it mounts.
            missing.Add($"the run-as user '{runAs.Name}' cannot reach the data directory {dataDirectory}: every directory above it must be searchable by others (chmod o+x)");
        }
        if (missing.Count == 0 && Probe() is { } probeFailure)
        {
            missing.Add(probeFailure);
        }
        if (missing.Count == 0)
        {
            protections.Add(User is { } u ? $"content runs as {u.Name} (uid {u.Uid})" : "content runs as the server's user");
            protections.Add("bubblewrap: own user, PID, IPC and UTS namespaces, no capabilities, no_new_privs, private /proc, /tmp and /dev");
        }

        if (_options.BlockHostNetwork && User is { } user)
        {
            if (NetworkGuard.Apply(user.Uid, clusterPorts, _options.AllowedHostPorts) is { } guardFailure)
            {
                gaps.Add("content can connect to this host's own listeners (silo, Kestrel, loopback services): " + guardFailure);
            }
            else
            {
                protections.Add($"nftables: uid {user.Uid} cannot connect to this host's addresses or to silo ports {string.Join(", ", clusterPorts)}");
            }
        }
        else if (_options.BlockHostNetwork)
        {
            gaps.Add("content can connect to this host's own listeners: the network guard needs the server to run as root");
        }
        else
        {
            gaps.Add("Sandbox:BlockHostNetwork=false: content can connect to this host's own listeners");
        }

        Limiter = ResourceLimiter.Detect(_applications, nodeName, _logger);
        if (Limiter.Mechanism.StartsWith("cgroup", StringComparison.Ordinal))
        {
            protections.Add($"resource limits by {Limiter.Mechanism}: " + string.Join(" ", Limiter.Notes));
        }
        else
        {
            gaps.Add($"resource limits by {Limiter.Mechanism} only (no usable cgroup): " + string.Join(" ", Limiter.Notes));
        }
        Limiter.CleanupStaleAsync().GetAwaiter().GetResult();

        Protections = protections;
        Gaps = gaps;
        Unavailable = missing.Count > 0 ? "Content cannot run on this server: " + string.Join("; ", missing) + ". Fix this, or set Sandbox:Mode=Disabled (unsafe) to run content unsandboxed." : null;
        foreach (var p in protections)
        {
            LogProtection(_logger, p);
        }
        foreach (var g in gaps)
        {
            LogGap(_logger, g);
        }
        if (Unavailable is { } why)
        {
            LogUnavailable(_logger, why);
        }
        return _options.Mode == SandboxMode.Required ? [.. missing, .. gaps] : [];
    }

    /// <summary>Takes this node's allowances out of the shared network guard (graceful shutdown).</summary>
    public void Release()
    {
        if (User is { } user && _options.BlockHostNetwork)
        {
            NetworkGuard.Release(user.Uid, _options.AllowedHostPorts);
        }
    }

    /// <summary>Throws <see cref="SandboxUnavailableException"/> when content cannot run here.</summary>
    public void EnsureAvailable()
    {
        if (_options.Mode != SandboxMode.Disabled && Unavailable is { } why)
        {
            throw new SandboxUnavailableException(why);
        }
    }

    /// <summary>Wraps <paramref name="spec"/> in the sandbox described by <paramref name="profile"/>.</summary>
    public SandboxedLaunch Prepare(LaunchSpec spec, SandboxProfile profile, string scopeName)
    {
        if (_options.Mode == SandboxMode.Disabled)
        {
            return new SandboxedLaunch(spec, null);
        }
        EnsureAvailable();
        var wrapped = Bubblewrap.Wrap(spec, profile, _options.Bubblewrap, _hidden);
        if (User is { } user)
        {
            wrapped = wrapped with { FileName = _options.Setpriv, Arguments = [.. DropTo(user), wrapped.FileName, .. wrapped.Arguments] };
        }
        var scope = Limiter?.Create(scopeName, profile.Limits);
        if (scope is not null)
        {
            wrapped = scope.Apply(wrapped);
        }
        return new SandboxedLaunch(wrapped, scope);
    }

    /// <summary>setpriv's arguments that become <paramref name="user"/> with no supplementary groups and no capabilities.</summary>
    private static string[] DropTo(RunAsUser user) =>
        [$"--reuid={user.Uid}", $"--regid={user.Gid}", "--clear-groups", "--inh-caps=-all", "--no-new-privs", "--"];

    /// <summary>Hands a directory the server made to the run-as user, so that a sandboxed process may write it.</summary>
    public void GiveToContent(string directory)
    {
        if (_options.Mode != SandboxMode.Disabled && User is { } user)
        {
            user.Own(directory);
        }
    }

    /// <summary>Whether content can execute <paramref name="path"/> (an interpreter) under this sandbox.</summary>
    public bool CanExecute(string path) => _options.Mode == SandboxMode.Disabled || User is null ? File.Exists(path) : User.CanExecute(path);

    /// <summary>Runs /bin/true through the full chain once, so a host that cannot sandbox is known at start, not at the first request.</summary>
    private string? Probe()
    {
        var spec = new LaunchSpec("/bin/true", [], "/", new Dictionary<string, string>());
        var wrapped = Bubblewrap.Wrap(spec, new SandboxProfile(), _options.Bubblewrap, []);
        var arguments = User is { } user ? [.. DropTo(user), wrapped.FileName] : new List<string>();
        arguments.AddRange(wrapped.Arguments);
        var program = User is null ? wrapped.FileName : _options.Setpriv;
        var psi = new System.Diagnostics.ProcessStartInfo(program) { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in arguments)
        {
            psi.ArgumentList.Add(a);
        }
        try
        {
            using var process = System.Diagnostics.Process.Start(psi)!;
            var error = process.StandardError.ReadToEnd();
            process.StandardOutput.ReadToEnd();
            process.WaitForExit();
            return process.ExitCode == 0
                ? null
                : $"bubblewrap cannot create its namespaces here (exit {process.ExitCode}: {error.Trim()}); the kernel must allow unprivileged user namespaces (user.max_user_namespaces > 0; on Ubuntu, an AppArmor profile for bwrap)";
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or IOException)
        {
            return $"bubblewrap could not be run: {e.Message}";
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sandbox:Mode=Disabled: content processes run UNSANDBOXED as the server's user")]
    private static partial void LogDisabled(ILogger logger);

    [LoggerMessage(Level = LogLevel.Information, Message = "Sandbox: {Protection}")]
    private static partial void LogProtection(ILogger logger, string protection);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Sandbox gap: {Gap}")]
    private static partial void LogGap(ILogger logger, string gap);

    [LoggerMessage(Level = LogLevel.Error, Message = "{Reason}")]
    private static partial void LogUnavailable(ILogger logger, string reason);
}
