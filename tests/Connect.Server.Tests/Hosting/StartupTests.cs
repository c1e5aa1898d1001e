namespace Connect.Server.Tests.Hosting;

public sealed class StartupTests
{
    [Fact]
    public async Task Every_invalid_option_is_reported_at_once_and_the_server_does_not_start()
    {
        var e = await Assert.ThrowsAsync<ConfigurationProblemsException>(() => ConnectServer.BuildAsync(
        [
            "--Connect:ServerUrl=ftp://nope",
            "--Connect:MaxBundleBytes=10",
            "--Connect:ApiKeyCacheSeconds=-1",
            "--Connect:ApiKeyLastUsedFlushSeconds=0",
            "--Scheduler:LoadFactor=2",
            "--Scheduler:MaxProcesses=0",
            "--Scheduler:RestartBackoffInitialSeconds=10",
            "--Scheduler:RestartBackoffMaxSeconds=5",
            "--Scheduler:CrashLoopFailures=1",
            "--Scheduler:CrashLoopWindowSeconds=0",
            "--Python:Executables:0=relative/python",
            "--Bootstrap:SecretKeyFile=/does/not/exist",
            "--Orleans:SiloPort=70000",
            "--Sandbox:Mode=Required",
            "--Sandbox:Bubblewrap=/no/such/bwrap",
        ]));
        string[] expected = ["Connect:ServerUrl", "Connect:MaxBundleBytes", "Connect:ApiKeyCacheSeconds", "Connect:ApiKeyLastUsedFlushSeconds", "Scheduler:LoadFactor", "Scheduler:MaxProcesses",
            "Scheduler:RestartBackoffMaxSeconds", "Scheduler:CrashLoopFailures", "Scheduler:CrashLoopWindowSeconds", "Python", "Bootstrap:SecretKeyFile", "Orleans:SiloPort", "Sandbox:Mode"];
        foreach (var setting in expected)
        {
            Assert.Contains(e.Problems, p => p.Contains(setting, StringComparison.Ordinal));
        }
    }

    [Fact]
    public async Task A_bootstrap_secret_that_is_set_but_too_short_is_a_start_error()
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, Convert.ToBase64String(new byte[16]));
            var e = await Assert.ThrowsAsync<ConfigurationProblemsException>(() => ConnectServer.BuildAsync([$"--Bootstrap:SecretKeyFile={file}"]));
            Assert.Contains(e.Problems, p => p.Contains("at least 32 bytes", StringComparison.Ordinal));
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Admin_commands_create_users_and_keys_and_refuse_bad_input()
    {
        var dir = Path.Combine(Path.GetTempPath(), "connect-admin-" + Guid.NewGuid().ToString("N"));
        try
        {
            var data = $"--Connect:DataDir={dir}";
            async Task<(int Code, string Out, string Err)> Run(params string[] args)
            {
                var stdout = new StringWriter();
                var stderr = new StringWriter();
                var code = await AdminCommands.RunAsync([.. args, data], stdout, stderr);
                return (code, stdout.ToString(), stderr.ToString());
            }
            Assert.Equal(0, (await Run("create-user", "--username", "ada", "--role", "publisher")).Code);
            var duplicate = await Run("create-user", "--username", "ADA");
            Assert.Equal(1, duplicate.Code);
            Assert.Contains("already exists", duplicate.Err);
            Assert.Equal(2, (await Run("create-user", "--username", "bob", "--role", "wizard")).Code);
            Assert.Equal(1, (await Run("create-key", "--username", "nobody")).Code);
            var key = await Run("create-key", "--username", "ada");
            Assert.Equal(0, key.Code);
            Assert.Matches("^[0-9a-f]{64}$", key.Out.Trim());
            var list = await Run("list-users");
            Assert.Contains("ada\tpublisher", list.Out);
            Assert.Equal(2, (await Run("frobnicate")).Code);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
