using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Npgsql;

namespace Connect.Testing;

/// <summary>
/// A throwaway PostgreSQL server for tests: initdb into a temporary directory, run as a non-root user (PostgreSQL
/// refuses root), on a free loopback port, with durability off (nothing here must survive the test run). One per
/// test process, shared; each test takes its own database from <see cref="CreateDatabaseAsync"/>.
/// </summary>
public sealed class PostgresServer : IAsyncDisposable
{
    /// <summary>The superuser the server is initialised with (trust authentication on loopback).</summary>
    public const string Superuser = "connect";

    private static readonly SemaphoreSlim Gate = new(1, 1);
    private static PostgresServer? _shared;
    private readonly Process _process;
    private readonly string _directory;
    private int _databases;

    private PostgresServer(Process process, string directory, int port)
    {
        _process = process;
        _directory = directory;
        Port = port;
    }

    public int Port { get; }

    /// <summary>Connection string to the maintenance database <c>postgres</c>.</summary>
    public string AdminConnectionString => ConnectionString("postgres");

    public string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder { Host = "127.0.0.1", Port = Port, Username = Superuser, Database = database, Pooling = true }.ConnectionString;

    /// <summary>The server shared by this test process, started on first use.</summary>
    public static async Task<PostgresServer> SharedAsync()
    {
        await Gate.WaitAsync();
        try
        {
            if (_shared is null)
            {
                _shared = await StartAsync();
                AppDomain.CurrentDomain.ProcessExit += (_, _) => _shared.Kill();
            }
            return _shared;
        }
        finally
        {
            Gate.Release();
        }
    }

    /// <summary>A new, empty database; returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string prefix = "test")
    {
        var name = $"{prefix}_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid():N}".ToLowerInvariant();
        name = name[..Math.Min(name.Length, 60)];
        await using var connection = new NpgsqlConnection(AdminConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand($"CREATE DATABASE \"{name}\"", connection);
        await command.ExecuteNonQueryAsync();
        return ConnectionString(name);
    }

    public static async Task<PostgresServer> StartAsync()
    {
        var bin = FindBinaries();
        var user = RunAsUser();
        SweepAbandoned();
        var directory = Path.Combine(Path.GetTempPath(), DirectoryPrefix + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(directory);
        await File.WriteAllTextAsync(Path.Combine(directory, OwnerFile), Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var data = Path.Combine(directory, "data");
        if (user is not null)
        {
            await RunAsync("chown", [user, directory]);
        }
        await RunAsync(Path.Combine(bin, "initdb"), ["-D", data, "-U", Superuser, "--auth=trust", "-E", "UTF8", "--no-locale", "--no-sync"], user);
        var port = FreePort();
        var start = Command(Path.Combine(bin, "postgres"),
            ["-D", data, "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-k", directory,
             "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=300", "-c", "shared_buffers=64MB"], user);
        start.RedirectStandardOutput = true;
        start.RedirectStandardError = true;
        var process = Process.Start(start) ?? throw new InvalidOperationException("postgres did not start");
        var log = new System.Text.StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (log) { log.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new PostgresServer(process, directory, port);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            try
            {
                await using var connection = new NpgsqlConnection(server.AdminConnectionString + ";Pooling=false");
                await connection.OpenAsync();
                return server;
            }
            catch (Exception e) when (e is NpgsqlException or SocketException)
            {
                if (process.HasExited || DateTime.UtcNow > deadline)
                {
                    server.Kill();
                    string text;
                    lock (log) { text = log.ToString(); }
                    throw new InvalidOperationException($"PostgreSQL did not start on port {port}: {e.Message}\n{text}");
                }
                await Task.Delay(100);
            }
        }
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                // SIGINT is PostgreSQL's fast shutdown: the postmaster takes its backends down with it.
                _ = Kill(_process.Id, 2);
                if (!_process.WaitForExit(5000))
                {
                    _process.Kill(entireProcessTree: true);
                    _process.WaitForExit(5000);
                }
            }
        }
        catch (InvalidOperationException)
        {
        }
        TryDelete(_directory);
    }

    private const string DirectoryPrefix = "connect-pg-";
    private const string OwnerFile = "owner.pid";

    /// <summary>Servers of test runs that were killed before they could stop theirs (their owner process is gone).</summary>
    private static void SweepAbandoned()
    {
        foreach (var dir in Directory.EnumerateDirectories(Path.GetTempPath(), DirectoryPrefix + "*"))
        {
            try
            {
                var owner = int.Parse(File.ReadAllText(Path.Combine(dir, OwnerFile)), System.Globalization.CultureInfo.InvariantCulture);
                if (Directory.Exists($"/proc/{owner}"))
                {
                    continue;
                }
                var pidFile = Path.Combine(dir, "data", "postmaster.pid");
                if (File.Exists(pidFile) && int.TryParse(File.ReadLines(pidFile).First(), out var postmaster))
                {
                    _ = Kill(postmaster, 9);
                }
                TryDelete(dir);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
            }
        }
    }

    private static void TryDelete(string directory)
    {
        try
        {
            Directory.Delete(directory, recursive: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    public ValueTask DisposeAsync()
    {
        Kill();
        return ValueTask.CompletedTask;
    }

    /// <summary>The directory holding initdb and postgres: on PATH, or Debian's versioned directory.</summary>
    public static string FindBinaries()
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            if (File.Exists(Path.Combine(dir, "initdb")) && File.Exists(Path.Combine(dir, "postgres")))
            {
                return dir;
            }
        }
        if (Directory.Exists("/usr/lib/postgresql"))
        {
            foreach (var version in Directory.EnumerateDirectories("/usr/lib/postgresql").OrderByDescending(d => d, StringComparer.Ordinal))
            {
                var dir = Path.Combine(version, "bin");
                if (File.Exists(Path.Combine(dir, "initdb")))
                {
                    return dir;
                }
            }
        }
        throw new InvalidOperationException("PostgreSQL server binaries (initdb, postgres) were not found; tests/run.sh installs them (apt package postgresql)");
    }

    /// <summary>As root, the user PostgreSQL runs as (Debian's postgres account, created if missing); otherwise null (this user).</summary>
    private static string? RunAsUser()
    {
        if (Environment.UserName != "root")
        {
            return null;
        }
        if (!File.ReadAllLines("/etc/passwd").Any(l => l.StartsWith("postgres:", StringComparison.Ordinal)))
        {
            RunAsync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", "postgres"]).GetAwaiter().GetResult();
        }
        return "postgres";
    }

    private static ProcessStartInfo Command(string program, IEnumerable<string> args, string? user = null)
    {
        // setpriv execs the program (runuser would fork and stay as its parent): the process we hold is the program itself.
        var info = user is null ? new ProcessStartInfo(program)
            : new ProcessStartInfo("setpriv", ["--reuid=" + user, "--regid=" + user, "--init-groups", "--", program]);
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        info.UseShellExecute = false;
        return info;
    }

    private static async Task RunAsync(string program, IEnumerable<string> args, string? user = null)
    {
        var info = Command(program, args, user);
        info.RedirectStandardOutput = true;
        info.RedirectStandardError = true;
        using var process = Process.Start(info) ?? throw new InvalidOperationException($"{program} did not start");
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', info.ArgumentList)} failed ({process.ExitCode}): {await stderr}{await stdout}");
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
