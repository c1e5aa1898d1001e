#!/usr/bin/env python3
"""Connect benchmarks, each against a baseline measured in the same run.

1. Cold start of the Flask sample: first request through Connect with no process running, against starting
   the same app with the same launcher and interpreter directly and waiting for its first response.
2. Warm request throughput (wrk) of the Flask sample through Connect's front end, against the app directly.
3. Static file throughput (wrk) of the static sample through Connect, against nginx serving the same files.

Usage: tests/bench/run.sh (builds the server, installs wrk and nginx, then runs this).
"""
import base64, hashlib, hmac, io, json, os, re, shutil, signal, socket, statistics, subprocess, sys, tarfile, tempfile, time
import urllib.request, urllib.error

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SERVER_DLL = os.path.join(ROOT, "src/Connect.Server/bin/Release/net10.0/connect.dll")
RUNS = int(os.environ.get("BENCH_COLD_RUNS", "7"))
WRK_SECONDS = os.environ.get("BENCH_WRK_SECONDS", "8")


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


def wait_http(url, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=5).read()
            return
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.05)
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
    return rps, int(errors.group(1)) if errors else 0


def main():
    work = tempfile.mkdtemp(prefix="connect-bench-")
    secret = os.urandom(32)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, CONNECT_BOOTSTRAP_SECRETKEY=base64.b64encode(secret).decode())
    server = subprocess.Popen(["dotnet", SERVER_DLL, "--urls", base, f"--Connect:DataDir={work}/data", f"--Orleans:SiloPort={free_port()}",
                               "--Logging:LogLevel:Default=Warning"], env=env, stdout=open(f"{work}/server.log", "w"), stderr=subprocess.STDOUT)
    procs = [server]
    try:
        wait_http(f"{base}/__ping__")
        req = urllib.request.Request(f"{base}/__api__/v1/experimental/bootstrap", method="POST", headers={"Authorization": "Connect-Bootstrap " + jwt(secret)})
        key = json.loads(urllib.request.urlopen(req).read())["api_key"]
        flask = deploy(base, key, "bench-flask", "flask-api")
        static = deploy(base, key, "bench-static", "static-site")
        results = []

        # 1. Cold start.
        launcher = os.path.join(work, "data/runtime/launchers/connect_launcher.py")
        connect_cold, direct_cold = [], []
        for _ in range(RUNS):
            for job in request("GET", f"{base}/__api__/v1/content/{flask}/jobs", key=key):
                if job["status"] == 0:
                    request("DELETE", f"{base}/__api__/v1/content/{flask}/jobs/{job['key']}", key=key)
                    while os.path.exists(f"/proc/{job['pid']}"):
                        time.sleep(0.02)
            t0 = time.monotonic()
            request("GET", f"{base}/content/{flask}/add?a=1&b=2")
            connect_cold.append(time.monotonic() - t0)
        for _ in range(RUNS):
            p = free_port()
            t0 = time.monotonic()
            app = subprocess.Popen(["/usr/bin/python3", launcher, "--kind", "wsgi", "--entrypoint", "app", "--port", str(p), "--root-path", "",
                                    "--bundle", os.path.join(ROOT, "samples/flask-api")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_http(f"http://127.0.0.1:{p}/add?a=1&b=2")
            direct_cold.append(time.monotonic() - t0)
            app.send_signal(signal.SIGTERM)
            app.wait()
        c, d = statistics.median(connect_cold), statistics.median(direct_cold)
        results.append(("cold start, Flask sample (median s)", d, c, f"max through Connect {max(connect_cold):.3f} s"))

        # 2. Warm proxied requests.
        p = free_port()
        app = subprocess.Popen(["/usr/bin/python3", launcher, "--kind", "wsgi", "--entrypoint", "app", "--port", str(p), "--root-path", "",
                                "--bundle", os.path.join(ROOT, "samples/flask-api")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(app)
        wait_http(f"http://127.0.0.1:{p}/add?a=1&b=2")
        direct_rps, _ = wrk(f"http://127.0.0.1:{p}/add?a=1&b=2")
        request("PATCH", f"{base}/__api__/v1/content/{flask}", json.dumps({"max_processes": 1, "max_conns_per_process": 64}).encode(), key)
        request("GET", f"{base}/content/{flask}/add?a=1&b=2")
        connect_rps, errors = wrk(f"{base}/content/{flask}/add?a=1&b=2")
        results.append(("Flask /add, req/s (wrk -t2 -c32)", direct_rps, connect_rps, f"non-2xx through Connect: {errors}"))

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
        connect_static, errors = wrk(f"{base}/content/{static}/index.html")
        results.append(("static index.html, req/s (wrk -t2 -c32)", nginx_rps, connect_static, f"baseline nginx 1 worker; non-2xx: {errors}"))

        print()
        print(f"{'benchmark':42} {'baseline':>12} {'Connect':>12} {'ratio':>8}  note")
        for name, baseline, ours, note in results:
            print(f"{name:42} {baseline:12.3f} {ours:12.3f} {ours / baseline:8.2f}  {note}")
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
