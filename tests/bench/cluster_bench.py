#!/usr/bin/env python3
"""Cluster benchmarks (issue: cluster mode), on a real cluster started with deploy/cluster.sh in the same run.

1. Failover: BENCH_KILLS (default 5) rounds. In each, the node running a single-process API is SIGKILLed while 8
   clients load other content whose processes live on the survivors, through haproxy. Reported: time from the kill to
   the killed content being served again (min / median / max), and the errors the survivors' content saw. The node is
   restarted before the next round.
2. Throughput of 3 nodes against 1 behind the same haproxy: a raw ASGI API with one process per node (min_processes=3),
   wrk -c64 through the load balancer; then two nodes are stopped (their processes move to the third) and the same
   wrk runs again. Both node counts run twice, alternating. This machine has 2 cores: 3 nodes share them.
3. The cross-node hop: a single-process API read one request at a time (wrk -c1) through the node that runs its
   process and through another node (which forwards over the internal hop), interleaved; p50 and p99 of each.

Usage: tests/bench/run.sh cluster (builds the server, installs wrk, then runs this).
"""
import base64, hashlib, hmac, io, json, os, re, signal, statistics, subprocess, sys, tarfile, tempfile, threading, time
import urllib.request, urllib.error

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER_DLL = os.path.join(ROOT, "src/Connect.Server/bin/Release/net10.0/connect.dll")
SCRIPT = os.path.join(ROOT, "deploy/cluster.sh")
KILLS = int(os.environ.get("BENCH_KILLS", "5"))
WRK_SECONDS = os.environ.get("BENCH_WRK_SECONDS", "10")

APP = '''import json, os
JOB = os.environ.get("CONNECT_CONTENT_JOB_KEY", "")
async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            m = await receive()
            if m["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps({"job": JOB}).encode()})
'''


def bundle():
    files = {"app.py": APP.encode(), "requirements.txt": b""}
    manifest = {"version": 1, "metadata": {"appmode": "python-fastapi", "entrypoint": "app:app"},
                "python": {"version": "3.11.2", "package_manager": {"name": "pip", "version": "23.0.1", "package_file": "requirements.txt"}},
                "files": {k: {"checksum": hashlib.md5(v).hexdigest()} for k, v in files.items()}}
    files["manifest.json"] = json.dumps(manifest).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def http(method, url, body=None, key=None, timeout=30):
    req = urllib.request.Request(url, method=method, data=body)
    if key:
        req.add_header("Authorization", "Key " + key)
    if isinstance(body, bytes) and not url.endswith("/bundles"):
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def get_status(url, timeout=10):
    try:
        return http("GET", url, timeout=timeout)[0]
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, OSError) as e:
        return "error: %s" % e


class Cluster:
    def __init__(self, nodes):
        self.state = tempfile.mkdtemp(prefix="connect-cluster-bench-")
        self.secret = os.urandom(32)
        self.env = dict(os.environ, CONNECT_CLUSTER_DIR=self.state, CONNECT_SERVER_DLL=SERVER_DLL,
                        CONNECT_BOOTSTRAP_SECRETKEY=base64.b64encode(self.secret).decode(),
                        Logging__LogLevel__Default="Warning", Logging__LogLevel__Connect="Warning",
                        Scheduler__IdleTimeout="3600", Cluster__DrainSeconds="3")
        self.nodes = {}
        self.read(self.run("start", str(nodes), timeout=600))
        self.key = self.bootstrap()

    def run(self, *args, timeout=300):
        out = subprocess.run(["bash", SCRIPT, *args], env=self.env, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            raise RuntimeError("cluster.sh %s failed: %s" % (" ".join(args), out.stderr[-3000:]))
        return out.stdout

    def read(self, output):
        for line in output.splitlines():
            if line.startswith("CONNECT_URL="):
                self.lb = line.split("=", 1)[1].rstrip("/")
            elif line.startswith("NODE "):
                _, name, _, url = line.split()[:4]
                self.nodes[name] = url.rstrip("/")

    def bootstrap(self):
        b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        now = int(time.time())
        h = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        p = b64(json.dumps({"iss": "rsconnect-python", "aud": "rsconnect", "scope": "bootstrap", "iat": now, "exp": now + 900}).encode())
        token = f"{h}.{p}." + b64(hmac.new(self.secret, f"{h}.{p}".encode(), hashlib.sha256).digest())
        req = urllib.request.Request(self.lb + "/__api__/v1/experimental/bootstrap", method="POST")
        req.add_header("Authorization", "Connect-Bootstrap " + token)
        with urllib.request.urlopen(req) as r:
            return json.loads(r.read())["api_key"]

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None and not isinstance(body, bytes) else body
        return json.loads(http(method, self.lb + "/__api__/" + path, data, self.key, timeout=120)[1] or b"null")

    def deploy(self, name, settings):
        item = self.api("POST", "v1/content", {"name": name, "access_type": "all", **settings})
        b = self.api("POST", "v1/content/%s/bundles" % item["guid"], bundle())
        task = self.api("POST", "v1/content/%s/deploy" % item["guid"], {"bundle_id": b["id"]})["task_id"]
        while True:
            t = self.api("GET", "v1/tasks/%s?wait=1" % task)
            if t["finished"]:
                if t["code"] != 0:
                    raise RuntimeError("deploy failed: %s" % t["error"])
                return item["guid"]

    def placement(self, guid):
        """node name of each active process of the item."""
        return [j["hostname"] for j in self.api("GET", "v1/content/%s/jobs" % guid) if j["end_time"] is None]

    def wait_processes(self, guid, count, timeout=60, avoid=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            where = self.placement(guid)
            if len(where) == count and (avoid is None or avoid not in where):
                return where
            time.sleep(0.2)
        raise TimeoutError("processes of %s: %s" % (guid, self.placement(guid)))

    def down(self):
        try:
            self.run("down", timeout=180)
        except Exception as e:  # best effort
            print("down failed:", e)


def wrk(url, connections, seconds):
    out = subprocess.run(["wrk", "-t%d" % min(2, connections), "-c%d" % connections, "-d%ss" % seconds, "--latency", url], capture_output=True, text=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    lat = {}
    for pct in ("50", "99"):
        m = re.search(r"\s%s(?:\.000)?%%\s+([\d.]+)(us|ms|s)" % pct, out)
        value, unit = float(m.group(1)), m.group(2)
        lat[pct] = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return rps, int(errors.group(1)) if errors else 0, lat


def failover(cluster):
    items = [cluster.deploy("failover-%d" % i, {"min_processes": 1, "max_processes": 1}) for i in range(3)]
    times, error_counts = [], []
    for round_ in range(KILLS):
        where = {g: cluster.wait_processes(g, 1)[0] for g in items}
        victim = where[items[round_ % len(items)]]
        lost = [g for g in items if where[g] == victim]
        surviving = [g for g in items if where[g] != victim]
        if not surviving:
            print("round %d: every item is on %s; skipped" % (round_, victim))
            continue
        errors, stop = [], threading.Event()

        def load(guid):
            while not stop.is_set():
                status = get_status("%s/content/%s/" % (cluster.lb, guid))
                if status != 200:
                    errors.append(status)

        threads = [threading.Thread(target=load, args=(surviving[i % len(surviving)],)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(1)
        killed = time.monotonic()
        cluster.run("kill", victim)
        served = {}
        while len(served) < len(lost) and time.monotonic() - killed < 60:
            for g in lost:
                if g not in served and get_status("%s/content/%s/" % (cluster.lb, g), timeout=5) == 200:
                    served[g] = time.monotonic() - killed
            time.sleep(0.02)
        time.sleep(2)
        stop.set()
        for t in threads:
            t.join()
        worst = max(served.values()) if served else float("inf")
        times.append(worst)
        error_counts.append(len(errors))
        print("kill %d: %s (%d items lost) served again after %.2f s; survivors' content saw %d errors %s"
              % (round_ + 1, victim, len(lost), worst, len(errors), sorted(set(map(str, errors)))[:3]), flush=True)
        cluster.read(cluster.run("restart", victim))
    return times, error_counts


def throughput(cluster):
    guid = cluster.deploy("throughput", {"min_processes": 3, "max_processes": 3, "max_conns_per_process": 200, "load_factor": 1.0})
    url = "%s/content/%s/" % (cluster.lb, guid)
    results = {3: [], 1: []}
    others = [n for n in sorted(cluster.nodes) if n != "node1"]
    for round_ in range(2):
        cluster.wait_processes(guid, 3)
        wrk(url, 64, 2)
        rps, errors, lat = wrk(url, 64, WRK_SECONDS)
        results[3].append(rps)
        print("3 nodes: %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d non-2xx" % (rps, lat["50"], lat["99"], errors), flush=True)
        for n in others:
            cluster.run("stop", n)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and set(cluster.placement(guid)) != {"node1"}:
            time.sleep(0.2)
        wrk(url, 64, 2)
        rps, errors, lat = wrk(url, 64, WRK_SECONDS)
        results[1].append(rps)
        print("1 node:  %.0f req/s, p50 %.2f ms, p99 %.2f ms, %d non-2xx" % (rps, lat["50"], lat["99"], errors), flush=True)
        for n in others:
            cluster.read(cluster.run("restart", n))
        # Spread the processes again: a redeploy stops them and min_processes starts them by least-loaded placement.
        b = cluster.api("GET", "v1/content/%s" % guid)["bundle_id"]
        task = cluster.api("POST", "v1/content/%s/deploy" % guid, {"bundle_id": b})["task_id"]
        while not cluster.api("GET", "v1/tasks/%s?wait=1" % task)["finished"]:
            pass
    return results


def hop(cluster):
    guid = cluster.deploy("hop", {"min_processes": 1, "max_processes": 1})
    home = cluster.wait_processes(guid, 1)[0]
    other = next(n for n in sorted(cluster.nodes) if n != home)
    local_url = "%s/content/%s/" % (cluster.nodes[home], guid)
    hop_url = "%s/content/%s/" % (cluster.nodes[other], guid)
    wrk(local_url, 1, 2)
    wrk(hop_url, 1, 2)
    rounds = {"local": [], "hop": []}
    for round_ in range(3):
        for kind, url in (("local", local_url), ("hop", hop_url)) if round_ % 2 == 0 else (("hop", hop_url), ("local", local_url)):
            rps, errors, lat = wrk(url, 1, 5)
            rounds[kind].append(lat)
            print("%-5s via %s: %.0f req/s, p50 %.3f ms, p99 %.3f ms" % (kind, home if kind == "local" else other, rps, lat["50"], lat["99"]), flush=True)
    return rounds


def main():
    cluster = Cluster(3)
    try:
        print("cluster: %s behind %s" % (", ".join("%s=%s" % kv for kv in sorted(cluster.nodes.items())), cluster.lb), flush=True)
        times, errors = failover(cluster)
        hops = hop(cluster)
        tp = throughput(cluster)
    finally:
        cluster.down()
    print()
    print("== failover over %d kills: min %.2f s, median %.2f s, max %.2f s (target <= 5 s); errors seen by survivors' content per kill: %s"
          % (len(times), min(times), statistics.median(times), max(times), errors))
    p50 = lambda kind: statistics.median(l["50"] for l in hops[kind])
    p99 = lambda kind: statistics.median(l["99"] for l in hops[kind])
    print("== cross-node hop: p50 %.3f ms local vs %.3f ms hop (+%.3f ms; target <= 1 ms); p99 %.3f vs %.3f ms"
          % (p50("local"), p50("hop"), p50("hop") - p50("local"), p99("local"), p99("hop")))
    r3, r1 = statistics.median(tp[3]), statistics.median(tp[1])
    print("== throughput behind haproxy: 3 nodes %.0f req/s, 1 node %.0f req/s, ratio %.2f (2 cores shared by all nodes, haproxy and wrk)"
          % (r3, r1, r3 / r1))


if __name__ == "__main__":
    main()
