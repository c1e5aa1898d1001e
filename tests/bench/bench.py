#!/usr/bin/env python3
"""Connect benchmarks, each against a baseline measured in the same run.

Two Connect servers run side by side, each with its own data directory, ports and silo port: one with the default
sandbox (Sandbox:Mode=Auto: setpriv to the run-as user, bubblewrap, a cgroup limit scope) and one with
Sandbox:Mode=Disabled. The Flask sample is deployed to both.

1. Cold start of the Flask sample (first request with no process running), interleaved round-robin between the
   sandboxed server, the unsandboxed server and the same launcher and interpreter started directly (waiting for its
   first response). Median, p95 and max of each; the sandbox's cost is sandboxed minus unsandboxed at the median
   (the issue's budget: at most 50 ms).
2. Warm request throughput (wrk) of the Flask sample: through the sandboxed server against the app directly, and
   sandboxed against unsandboxed, interleaved (the sandbox should cost nothing per request).
3. Static file throughput (wrk) of the static sample through Connect, against nginx serving the same files.

Usage: tests/bench/run.sh (builds the server, installs wrk and nginx, then runs this).
"""
import base64, glob, hashlib, hmac, io, json, math, os, re, shutil, signal, socket, statistics, subprocess, sys, tarfile, tempfile, time
import urllib.request, urllib.error

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER_DLL = os.path.join(ROOT, "src/Connect.Server/bin/Release/net10.0/connect.dll")
RUNS = int(os.environ.get("BENCH_COLD_RUNS", "15"))  # measured cold starts of each kind (one more, unmeasured, warms up)
WRK_SECONDS = os.environ.get("BENCH_WRK_SECONDS", "10")
WRK_ROUNDS = int(os.environ.get("BENCH_WRK_ROUNDS", "2"))  # sandboxed/unsandboxed pairs, alternating which goes first
SANDBOX_BUDGET_MS = 50


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(method, url, body=None, key=None, raw=False):
    req = urllib.request.Request(url, method=method, data=body)
    if key:
        req.add_header("Authorization", "Key " + key)
    with urllib.request.urlopen(req, timeout=120) as r:
        data = r.read()
        return data if raw else json.loads(data or b"null")


def jwt(secret):
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    now = int(time.time())
    h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    p = b64(json.dumps({"iss": "rsconnect-python", "aud": "rsconnect", "scope": "bootstrap", "iat": now, "exp": now + 900}).encode())
    return f"{h}.{p}." + b64(hmac.new(secret, f"{h}.{p}".encode(), hashlib.sha256).digest())


def wait_http(url, timeout=60, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(interval)
    raise TimeoutError(url)


def bundle(sample):
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        tar.add(os.path.join(ROOT, "samples", sample), arcname=".")
    return out.getvalue()


def deploy(base, key, name, sample):
    guid = request("POST", f"{base}/__api__/v1/content", json.dumps({"name": name, "access_type": "all"}).encode(), key)["guid"]
    bid = request("POST", f"{base}/__api__/v1/content/{guid}/bundles", bundle(sample), key)["id"]
    task = request("POST", f"{base}/__api__/v1/content/{guid}/deploy", json.dumps({"bundle_id": bid}).encode(), key)["task_id"]
    while True:
        t = request("GET", f"{base}/__api__/v1/tasks/{task}?wait=5", key=key)
        if t["finished"]:
            if t["code"] != 0:
                raise RuntimeError(t["error"])
            return guid


def wrk(url):
    out = subprocess.run(["wrk", "-t2", "-c32", f"-d{WRK_SECONDS}s", url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return rps, (int(errors.group(1)) if errors else 0) + (sum(map(int, socket_errors.groups())) if socket_errors else 0)


def distinct_ports(n):
    ports = set()
    while len(ports) < n:
        ports.add(free_port())
    return list(ports)


class Server:
    """One Connect server with its own data directory, HTTP port, silo port and bootstrap secret."""

    def __init__(self, work, name, extra_args):
        self.name = name
        self.dir = os.path.join(work, name)
        os.makedirs(self.dir)
        self.port, self.silo_port = distinct_ports(2)
        self.base = f"http://127.0.0.1:{self.port}"
        self.secret = os.urandom(32)
        self.key = None
        env = dict(os.environ, CONNECT_BOOTSTRAP_SECRETKEY=base64.b64encode(self.secret).decode())
        self.log = open(f"{self.dir}/server.log", "w")
        # A session of its own: the server and anything it leaves behind can be signalled as a group at the end.
        self.proc = subprocess.Popen(["dotnet", SERVER_DLL, "--urls", self.base, f"--Connect:DataDir={self.dir}/data",
                                      f"--Orleans:SiloPort={self.silo_port}", "--Logging:LogLevel:Default=Warning", *extra_args],
                                     env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def bootstrap(self):
        try:
            wait_http(f"{self.base}/__ping__", timeout=120)
        except TimeoutError:
            raise RuntimeError(f"{self.name} server did not start; log:\n" + open(f"{self.dir}/server.log").read()[-4000:])
        req = urllib.request.Request(f"{self.base}/__api__/v1/experimental/bootstrap", method="POST",
                                     headers={"Authorization": "Connect-Bootstrap " + jwt(self.secret)})
        self.key = json.loads(urllib.request.urlopen(req).read())["api_key"]

    def api(self, method, path, body=None):
        return request(method, f"{self.base}/__api__/v1{path}", json.dumps(body).encode() if body is not None else None, self.key)

    def stop_jobs(self, guid, timeout=30):
        """Stops every running process of the item and waits until it is gone (process exited, job finished)."""
        deadline = time.monotonic() + timeout
        active = [j for j in self.api("GET", f"/content/{guid}/jobs") if j["status"] == 0]
        for job in active:
            self.api("DELETE", f"/content/{guid}/jobs/{job['key']}")
        for job in active:
            while job["pid"] and os.path.exists(f"/proc/{job['pid']}"):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{self.name}: job {job['key']} (pid {job['pid']}) did not stop")
                time.sleep(0.01)
        while any(j["status"] == 0 for j in self.api("GET", f"/content/{guid}/jobs")):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.name}: a job of {guid} stays active")
            time.sleep(0.02)

    def cold_start(self, guid):
        self.stop_jobs(guid)
        time.sleep(0.2)  # let the previous process's scope teardown finish before the clock starts
        t0 = time.monotonic()
        request("GET", f"{self.base}/content/{guid}/add?a=1&b=2")
        return time.monotonic() - t0

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # graceful: stops content, releases the network guard
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # whatever is left in its session
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()

    def remove_cgroups(self):
        """Removes this node's (empty, once its content is gone) cgroup v1/v2 directories, "<root>/connect/<host>-<silo port>"."""
        for node in glob.glob(f"/sys/fs/cgroup/*/connect/*-{self.silo_port}") + glob.glob(f"/sys/fs/cgroup/connect/*-{self.silo_port}"):
            for dirpath, _, _ in sorted(os.walk(node), key=lambda w: -w[0].count("/")):
                try:
                    os.rmdir(dirpath)
                except OSError:
                    pass


def kill_leftovers(work):
    """SIGKILLs any process still running from the benchmark's temporary directory (e.g. an orphaned app)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace")
        except OSError:
            continue
        if work in cmdline and int(pid) != os.getpid():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def summary(samples):
    s = sorted(samples)
    p95 = s[min(len(s) - 1, max(0, math.ceil(0.95 * len(s)) - 1))]  # nearest rank
    return statistics.median(s), p95, s[-1]


def main():
    work = tempfile.mkdtemp(prefix="connect-bench-")
    # mkdtemp makes it 0700: the sandbox's run-as user must be able to pass through to the bundles and environments.
    os.chmod(work, 0o711)
    servers, procs = [], []
    try:
        sandboxed = Server(work, "sandboxed", [])
        servers.append(sandboxed)
        unsandboxed = Server(work, "unsandboxed", ["--Sandbox:Mode=Disabled"])
        servers.append(unsandboxed)
        for s in servers:
            s.bootstrap()
        flask = {s: deploy(s.base, s.key, "bench-flask", "flask-api") for s in servers}
        static = deploy(sandboxed.base, sandboxed.key, "bench-static", "static-site")
        results = []

        # 1. Cold start, interleaved round-robin (the order rotates each round) so that drift in machine load hits all three alike.
        launcher = os.path.join(sandboxed.dir, "data/runtime/launchers/connect_launcher.py")

        def direct_cold():
            p = free_port()
            t0 = time.monotonic()
            app = subprocess.Popen(["/usr/bin/python3", launcher, "--kind", "wsgi", "--entrypoint", "app", "--port", str(p), "--root-path", "",
                                    "--bundle", os.path.join(ROOT, "samples/flask-api")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                wait_http(f"http://127.0.0.1:{p}/add?a=1&b=2", interval=0.005)
                return time.monotonic() - t0
            finally:
                app.send_signal(signal.SIGTERM)
                app.wait()

        kinds = [("sandboxed", lambda: sandboxed.cold_start(flask[sandboxed])),
                 ("unsandboxed", lambda: unsandboxed.cold_start(flask[unsandboxed])),
                 ("direct", direct_cold)]
        cold = {name: [] for name, _ in kinds}
        for i in range(RUNS + 1):
            for name, run in kinds[i % 3:] + kinds[:i % 3]:
                elapsed = run()
                if i > 0:  # the first round warms caches (page cache, .pyc, the servers' JIT) and is not counted
                    cold[name].append(elapsed)
        stats = {name: summary(samples) for name, samples in cold.items()}
        added_ms = (stats["sandboxed"][0] - stats["unsandboxed"][0]) * 1000
        results.append(("cold start, Flask, sandboxed (median s)", stats["direct"][0], stats["sandboxed"][0], "baseline: direct"))
        results.append(("cold start, Flask, sandbox cost (median s)", stats["unsandboxed"][0], stats["sandboxed"][0],
                        f"baseline: unsandboxed; {added_ms:+.0f} ms, budget {SANDBOX_BUDGET_MS} ms: {'OK' if added_ms <= SANDBOX_BUDGET_MS else 'OVER'}"))

        # 2. Warm proxied requests: direct, then sandboxed and unsandboxed interleaved.
        p = free_port()
        app = subprocess.Popen(["/usr/bin/python3", launcher, "--kind", "wsgi", "--entrypoint", "app", "--port", str(p), "--root-path", "",
                                "--bundle", os.path.join(ROOT, "samples/flask-api")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(app)
        wait_http(f"http://127.0.0.1:{p}/add?a=1&b=2")
        direct_rps, _ = wrk(f"http://127.0.0.1:{p}/add?a=1&b=2")
        app.send_signal(signal.SIGTERM)
        app.wait()
        for s in servers:
            s.api("PATCH", f"/content/{flask[s]}", {"max_processes": 1, "max_conns_per_process": 64})
            request("GET", f"{s.base}/content/{flask[s]}/add?a=1&b=2")
        rps = {s: [] for s in servers}
        errors = {s: 0 for s in servers}
        for r in range(WRK_ROUNDS):
            for s in servers if r % 2 == 0 else reversed(servers):
                value, errs = wrk(f"{s.base}/content/{flask[s]}/add?a=1&b=2")
                rps[s].append(value)
                errors[s] += errs
        sand_rps, unsand_rps = statistics.mean(rps[sandboxed]), statistics.mean(rps[unsandboxed])
        results.append(("Flask /add, req/s, sandboxed (wrk -t2 -c32)", direct_rps, sand_rps, f"baseline: direct; errors: {errors[sandboxed]}"))
        results.append(("Flask /add, req/s, sandbox cost", unsand_rps, sand_rps,
                        f"baseline: unsandboxed; mean of {WRK_ROUNDS}; rounds S {'/'.join(f'{v:.0f}' for v in rps[sandboxed])}"
                        f" U {'/'.join(f'{v:.0f}' for v in rps[unsandboxed])}; errors: {errors[unsandboxed]}"))

        # 3. Static files against nginx.
        np_ = free_port()
        conf = f"""worker_processes 1; daemon off; pid {work}/nginx.pid; error_log {work}/nginx.err;
events {{ worker_connections 1024; }}
http {{ access_log off; include /etc/nginx/mime.types; server {{ listen 127.0.0.1:{np_}; root {ROOT}/samples/static-site; }} }}"""
        open(f"{work}/nginx.conf", "w").write(conf)
        nginx = subprocess.Popen(["nginx", "-c", f"{work}/nginx.conf", "-p", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(nginx)
        wait_http(f"http://127.0.0.1:{np_}/index.html")
        nginx_rps, _ = wrk(f"http://127.0.0.1:{np_}/index.html")
        connect_static, errs = wrk(f"{sandboxed.base}/content/{static}/index.html")
        results.append(("static index.html, req/s (wrk -t2 -c32)", nginx_rps, connect_static, f"baseline: nginx 1 worker; errors: {errs}"))

        print()
        print(f"cold start of the Flask sample, {RUNS} runs each, interleaved (s)")
        print(f"  {'':40} {'median':>8} {'p95':>8} {'max':>8}")
        for name, label in (("direct", "direct (same launcher, TCP)"), ("unsandboxed", "Connect, Sandbox:Mode=Disabled"), ("sandboxed", "Connect, sandboxed (default)")):
            med, p95, mx = stats[name]
            print(f"  {label:40} {med:8.3f} {p95:8.3f} {mx:8.3f}")
        print(f"  sandbox adds at the median: {added_ms:+.0f} ms (budget {SANDBOX_BUDGET_MS} ms)")
        print(f"  sandbox adds at p95: {(stats['sandboxed'][1] - stats['unsandboxed'][1]) * 1000:+.0f} ms")
        # Same-round pairs cancel slow drift in machine load; a noisy shared host shows it in the spread of the pairs.
        paired = sorted((a - b) * 1000 for a, b in zip(cold["sandboxed"], cold["unsandboxed"]))
        print(f"  paired (same round) sandboxed - unsandboxed: median {statistics.median(paired):+.0f} ms,"
              f" middle half {paired[len(paired) // 4]:+.0f} .. {paired[(3 * len(paired)) // 4]:+.0f} ms")
        print()
        print(f"{'benchmark':46} {'baseline':>12} {'Connect':>12} {'ratio':>8}  note")
        for name, baseline, ours, note in results:
            print(f"{name:46} {baseline:12.3f} {ours:12.3f} {ours / baseline:8.2f}  {note}")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        for s in servers:
            s.stop()
        kill_leftovers(work)
        for s in servers:
            s.remove_cgroups()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
