namespace Connect.Server.Tests.Isolation;

/// <summary>A publisher's app that tries, on request, every way out of its sandbox a hostile publisher would.</summary>
public static class HostileApp
{
    public static readonly Dictionary<string, string> Files = new()
    {
        ["app.py"] = """
            import errno, json, os, signal, socket, subprocess, time
            from flask import Flask, jsonify, request

            app = Flask(__name__)

            def outcome(fn):
                try:
                    return {"ok": True, "value": fn()}
                except Exception as e:
                    return {"ok": False, "error": type(e).__name__ + ": " + str(e)}

            def status_field(name):
                with open("/proc/self/status") as f:
                    for line in f:
                        if line.startswith(name + ":"):
                            return line.split(":", 1)[1].strip()

            def cmdline(pid):
                try:
                    with open("/proc/%s/cmdline" % pid, "rb") as f:
                        return f.read().replace(b"\0", b" ").decode(errors="replace")
                except OSError:
                    return ""

            @app.get("/whoami")
            def whoami():
                pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
                return jsonify(uid=os.getuid(), euid=os.geteuid(), gid=os.getgid(), pid=os.getpid(),
                               cap_eff=status_field("CapEff"), cap_bnd=status_field("CapBnd"),
                               no_new_privs=status_field("NoNewPrivs"), pids=pids,
                               cmdlines=[cmdline(p) for p in pids], env=sorted(os.environ.keys()),
                               home=os.environ.get("HOME"), cwd=os.getcwd())

            @app.get("/read")
            def read():
                def go():
                    with open(request.args["path"], "rb") as f:
                        return len(f.read())
                return jsonify(outcome(go))

            @app.get("/list")
            def listdir():
                return jsonify(outcome(lambda: os.listdir(request.args["path"])))

            @app.get("/write")
            def write():
                def go():
                    with open(request.args["path"], "w") as f:
                        f.write("planted by a hostile app")
                    return True
                return jsonify(outcome(go))

            @app.get("/kill")
            def kill():
                return jsonify(outcome(lambda: os.kill(int(request.args["pid"]), int(request.args.get("sig", "0")))))

            @app.get("/connect")
            def connect():
                def go():
                    s = socket.create_connection((request.args["host"], int(request.args["port"])), timeout=3)
                    s.close()
                    return True
                return jsonify(outcome(go))

            @app.get("/connect_unix")
            def connect_unix():
                def go():
                    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                    s.settimeout(3)
                    s.connect(request.args["path"])
                    s.close()
                    return True
                return jsonify(outcome(go))

            @app.get("/scan_environ")
            def scan_environ():
                needle = request.args["needle"].encode()
                found = []
                for p in os.listdir("/proc"):
                    if p.isdigit():
                        try:
                            with open("/proc/%s/environ" % p, "rb") as f:
                                if needle in f.read():
                                    found.append(int(p))
                        except OSError:
                            pass
                return jsonify(found=found, me=os.getpid())

            @app.get("/fork")
            def fork():
                n = int(request.args["n"])
                children, failure = [], None
                for _ in range(n):
                    try:
                        pid = os.fork()
                    except OSError as e:
                        failure = "%s (errno %d)" % (e.strerror, e.errno)
                        break
                    if pid == 0:
                        time.sleep(30)
                        os._exit(0)
                    children.append(pid)
                for pid in children:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                return jsonify(forked=len(children), failure=failure)

            hoard = []

            @app.get("/alloc")
            def alloc():
                mb = int(request.args["mb"])
                for _ in range(mb):
                    block = bytearray(1024 * 1024)
                    for i in range(0, len(block), 4096):
                        block[i] = 1
                    hoard.append(block)
                return jsonify(held_mb=len(hoard))

            @app.get("/pid")
            def pid():
                return jsonify(pid=os.getpid())
            """,
        ["requirements.txt"] = "",
    };

    /// <summary>A notebook whose cells try to write <paramref name="hostPath"/> and reach <paramref name="port"/> on loopback while it renders.</summary>
    public static string Notebook(string hostPath, int port)
    {
        var source = $$"""
            results = {}
            try:
                with open({{System.Text.Json.JsonSerializer.Serialize(hostPath)}}, "w") as f:
                    f.write("planted at render time")
                results["write"] = "WROTE"
            except Exception as e:
                results["write"] = "denied: " + type(e).__name__
            import socket
            try:
                socket.create_connection(("127.0.0.1", {{port}}), timeout=3).close()
                results["connect"] = "CONNECTED"
            except Exception as e:
                results["connect"] = "denied: " + type(e).__name__
            import os
            results["uid"] = os.getuid()
            for key, value in results.items():
                print("%s-OUTCOME=%s" % (key.upper(), str(value).replace(" ", "_")))
            """;
        var cell = new System.Text.Json.Nodes.JsonObject
        {
            ["cell_type"] = "code",
            ["execution_count"] = null,
            ["metadata"] = new System.Text.Json.Nodes.JsonObject(),
            ["outputs"] = new System.Text.Json.Nodes.JsonArray(),
            ["source"] = source,
        };
        var notebook = new System.Text.Json.Nodes.JsonObject
        {
            ["cells"] = new System.Text.Json.Nodes.JsonArray(cell),
            ["metadata"] = new System.Text.Json.Nodes.JsonObject
            {
                ["kernelspec"] = new System.Text.Json.Nodes.JsonObject { ["display_name"] = "Python 3", ["language"] = "python", ["name"] = "python3" },
            },
            ["nbformat"] = 4,
            ["nbformat_minor"] = 5,
        };
        return notebook.ToJsonString();
    }
}
