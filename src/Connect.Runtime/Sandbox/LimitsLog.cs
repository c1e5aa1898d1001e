using Microsoft.Extensions.Logging;

namespace Connect.Runtime.Sandbox;

internal static partial class LimitsLog
{
    [LoggerMessage(1500, LogLevel.Information, "Resource limits for content processes: {Mechanism}")]
    public static partial void MechanismChosen(ILogger logger, string mechanism);

    [LoggerMessage(1501, LogLevel.Information, "Resource limits: {Note}")]
    public static partial void Note(ILogger logger, string note);

    [LoggerMessage(1502, LogLevel.Information, "Resource limits: {Mechanism} is not usable: {Reason}")]
    public static partial void MechanismUnusable(ILogger logger, string mechanism, string reason);

    [LoggerMessage(1503, LogLevel.Warning, "Killed {Processes} processes left by a previous run in {Scopes} resource limit scopes")]
    public static partial void StaleKilled(ILogger logger, int processes, int scopes);

    [LoggerMessage(1504, LogLevel.Warning, "Could not remove resource limit scope {Directory}: {Reason}")]
    public static partial void ScopeNotRemoved(ILogger logger, string directory, string reason);

    [LoggerMessage(1505, LogLevel.Warning, "Processes in resource limit scope {Directory} were still alive after being killed")]
    public static partial void ScopeNotEmptied(ILogger logger, string directory);

    [LoggerMessage(1506, LogLevel.Information, "Moved {Count} processes of the server into cgroup {Directory} so that controllers can be delegated")]
    public static partial void ServerMoved(ILogger logger, int count, string directory);

    [LoggerMessage(1507, LogLevel.Warning, "Resource limits: CPU is not enforced: {Reason}")]
    public static partial void CpuNotEnforced(ILogger logger, string reason);
}
