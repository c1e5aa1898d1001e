using Microsoft.Extensions.Logging;

namespace Connect.Runtime;

internal static partial class RuntimeLog
{
    [LoggerMessage(1000, LogLevel.Information, "Started process {Pid}: {FileName} (working directory {WorkingDirectory})")]
    public static partial void ProcessStarted(ILogger logger, int pid, string fileName, string workingDirectory);

    [LoggerMessage(1001, LogLevel.Information, "Process {Pid} exited with code {ExitCode}")]
    public static partial void ProcessExited(ILogger logger, int pid, int exitCode);

    [LoggerMessage(1002, LogLevel.Debug, "Stopping process tree {Pid} (grace {Grace})")]
    public static partial void StoppingProcess(ILogger logger, int pid, TimeSpan grace);

    [LoggerMessage(1003, LogLevel.Warning, "Process tree {Pid} did not stop within its grace period; killing it")]
    public static partial void KillingProcess(ILogger logger, int pid);

    [LoggerMessage(1004, LogLevel.Warning, "Could not append output of process {Pid} to its log file")]
    public static partial void LogFileWriteFailed(ILogger logger, Exception exception, int pid);

    [LoggerMessage(1005, LogLevel.Warning, "Output callback for process {Pid} threw")]
    public static partial void OutputCallbackFailed(ILogger logger, Exception exception, int pid);

    [LoggerMessage(1006, LogLevel.Warning, "setsid was not found; stopping process {Pid} falls back to walking its process tree")]
    public static partial void NoSetsid(ILogger logger, int pid);

    [LoggerMessage(1100, LogLevel.Information, "Found Python {Version} at {Path}")]
    public static partial void PythonFound(ILogger logger, string version, string path);

    [LoggerMessage(1101, LogLevel.Debug, "Ignoring Python candidate {Path}: {Reason}")]
    public static partial void PythonCandidateIgnored(ILogger logger, string path, string reason);

    [LoggerMessage(1102, LogLevel.Warning, "No Python installation (3.8 or newer) was found")]
    public static partial void NoPythonFound(ILogger logger);

    [LoggerMessage(1200, LogLevel.Information, "Building Python environment {Directory} with {Python}")]
    public static partial void BuildingEnvironment(ILogger logger, string directory, string python);

    [LoggerMessage(1201, LogLevel.Information, "Python environment {Directory} is ready")]
    public static partial void EnvironmentReady(ILogger logger, string directory);

    [LoggerMessage(1202, LogLevel.Warning, "Building Python environment {Directory} failed")]
    public static partial void EnvironmentFailed(ILogger logger, Exception exception, string directory);

    [LoggerMessage(1203, LogLevel.Warning, "Removing incomplete Python environment {Directory}")]
    public static partial void RemovingIncompleteEnvironment(ILogger logger, string directory);

    [LoggerMessage(1204, LogLevel.Warning, "Could not remove {Directory}")]
    public static partial void CleanupFailed(ILogger logger, Exception exception, string directory);
}
