namespace Connect.Core.Model;

/// <summary>Server-wide defaults for <see cref="RuntimeSettings"/> (config section "Scheduler").</summary>
public sealed class SchedulerDefaults
{
    /// <summary>Processes kept running with no connections. Default 0.</summary>
    public int MinProcesses { get; set; }
    /// <summary>Most processes one item may run. Default 3.</summary>
    public int MaxProcesses { get; set; } = 3;
    /// <summary>Most concurrent connections one process takes. Default 20.</summary>
    public int MaxConnsPerProcess { get; set; } = 20;
    /// <summary>Share of <see cref="MaxConnsPerProcess"/> after which a new process is preferred. Default 0.5.</summary>
    public double LoadFactor { get; set; } = 0.5;
    /// <summary>Seconds a process with no connections stays alive. Default 120.</summary>
    public int IdleTimeout { get; set; } = 120;
    /// <summary>Seconds a new process has to accept connections. Default 60.</summary>
    public int InitTimeout { get; set; } = 60;
    /// <summary>Seconds a proxied connection may go without traffic either way (0 = never). Default 3600.</summary>
    public int ConnectionTimeout { get; set; } = 3600;
    /// <summary>Seconds a proxied connection may go without data from the client (0 = never). Default 3600.</summary>
    public int ReadTimeout { get; set; } = 3600;
    /// <summary>Upper bound publishers may set for init_timeout, in seconds. Default 240 (must stay below the grain-call timeout).</summary>
    public int MaxInitTimeout { get; set; } = 240;
    /// <summary>Upper bound publishers may set for max_processes. Default 20.</summary>
    public int MaxProcessesLimit { get; set; } = 20;
    /// <summary>Seconds new starts are held after the first of consecutive failures (failed starts, crashes); doubles per failure. Default 1.</summary>
    public int RestartBackoffInitialSeconds { get; set; } = 1;
    /// <summary>Ceiling of that hold, in seconds. Default 60.</summary>
    public int RestartBackoffMaxSeconds { get; set; } = 60;
    /// <summary>Failures within <see cref="CrashLoopWindowSeconds"/> that mark content as crash-looping. Default 5.</summary>
    public int CrashLoopFailures { get; set; } = 5;
    /// <summary>Seconds over which <see cref="CrashLoopFailures"/> are counted. Default 300.</summary>
    public int CrashLoopWindowSeconds { get; set; } = 300;
    /// <summary>Most content processes one node runs, whatever the content; a node at this count gets no new ones. Default 100.</summary>
    public int MaxProcessesPerNode { get; set; } = 100;

    public ScalingPolicy Resolve(RuntimeSettings s)
    {
        var max = Math.Clamp(s.MaxProcesses ?? MaxProcesses, 1, MaxProcessesLimit);
        return new ScalingPolicy(
            MinProcesses: Math.Clamp(s.MinProcesses ?? MinProcesses, 0, max),
            MaxProcesses: max,
            MaxConnsPerProcess: Math.Max(1, s.MaxConnsPerProcess ?? MaxConnsPerProcess),
            LoadFactor: Math.Clamp(s.LoadFactor ?? LoadFactor, 0.0, 1.0),
            IdleTimeout: TimeSpan.FromSeconds(Math.Max(0, s.IdleTimeout ?? IdleTimeout)),
            InitTimeout: TimeSpan.FromSeconds(Math.Clamp(s.InitTimeout ?? InitTimeout, 1, MaxInitTimeout)),
            ConnectionTimeout: TimeSpan.FromSeconds(Math.Max(0, s.ConnectionTimeout ?? ConnectionTimeout)),
            ReadTimeout: TimeSpan.FromSeconds(Math.Max(0, s.ReadTimeout ?? ReadTimeout)));
    }

    public IEnumerable<string> Validate()
    {
        if (MinProcesses < 0) yield return "Scheduler:MinProcesses must be >= 0.";
        if (MaxProcesses < 1) yield return "Scheduler:MaxProcesses must be >= 1.";
        if (MaxProcessesLimit < MaxProcesses) yield return "Scheduler:MaxProcessesLimit must be >= Scheduler:MaxProcesses.";
        if (MaxConnsPerProcess < 1) yield return "Scheduler:MaxConnsPerProcess must be >= 1.";
        if (LoadFactor is < 0 or > 1) yield return "Scheduler:LoadFactor must be between 0 and 1.";
        if (IdleTimeout < 0) yield return "Scheduler:IdleTimeout must be >= 0.";
        if (InitTimeout < 1) yield return "Scheduler:InitTimeout must be >= 1.";
        if (MaxInitTimeout < InitTimeout) yield return "Scheduler:MaxInitTimeout must be >= Scheduler:InitTimeout.";
        if (ConnectionTimeout < 0) yield return "Scheduler:ConnectionTimeout must be >= 0.";
        if (ReadTimeout < 0) yield return "Scheduler:ReadTimeout must be >= 0.";
        if (RestartBackoffInitialSeconds < 1) yield return "Scheduler:RestartBackoffInitialSeconds must be >= 1.";
        if (RestartBackoffMaxSeconds < RestartBackoffInitialSeconds) yield return "Scheduler:RestartBackoffMaxSeconds must be >= Scheduler:RestartBackoffInitialSeconds.";
        if (CrashLoopFailures < 2) yield return "Scheduler:CrashLoopFailures must be >= 2.";
        if (CrashLoopWindowSeconds < 1) yield return "Scheduler:CrashLoopWindowSeconds must be >= 1.";
        if (MaxProcessesPerNode < 1) yield return "Scheduler:MaxProcessesPerNode must be >= 1.";
    }
}
