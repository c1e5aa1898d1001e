#!/usr/bin/env python3
"""A stand-in for a Connect node, for testing deploy/cluster.sh without the server.

It reads the same environment a node gets and answers the endpoints the script and the load balancer use:
/__ping__, /__health__/live and /__health__/ready, plus /__whoami__ (Cluster__NodeName) and /__env__/NAME (the
value of an environment variable) in plain text, so that a test can see where a request went and what the node
was told. Files in its
scratch directory steer it: "not-ready" makes /__health__/ready answer 503, "ignore-term" makes it ignore SIGTERM
(a shutdown that hangs). It exits at once if the PostgreSQL port of Storage__ConnectionString takes no connection,
as a real node aborts without its database.
"""
import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

scratch = os.environ["Cluster__ScratchDir"]
name = os.environ["Cluster__NodeName"]
url = urlsplit(os.environ["ASPNETCORE_URLS"].split(";")[0])

settings = dict(part.split("=", 1) for part in os.environ["Storage__ConnectionString"].split(";") if part)
try:
    socket.create_connection((settings["Host"], int(settings["Port"])), timeout=5).close()
except OSError as e:
    print(f"{name}: PostgreSQL at {settings['Host']}:{settings['Port']} is unreachable: {e}", flush=True)
    sys.exit(3)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/__ping__":
            self.reply(200, {})
        elif path == "/__health__/live":
            self.reply(200, {"status": "live"})
        elif path == "/__health__/ready":
            ready = not os.path.exists(os.path.join(scratch, "not-ready"))
            self.reply(200 if ready else 503, {"status": "ready" if ready else "not ready"})
        elif path == "/__whoami__":
            self.reply(200, name)
        elif path.startswith("/__env__/") and path[len("/__env__/"):] in os.environ:
            self.reply(200, os.environ[path[len("/__env__/"):]])
        else:
            self.reply(404, {"error": "not found"})

    def reply(self, status, body):
        text = isinstance(body, str)
        data = (body if text else json.dumps(body)).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain" if text else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        pass


server = ThreadingHTTPServer((url.hostname, url.port), Handler)


def on_term(signum, frame):
    if os.path.exists(os.path.join(scratch, "ignore-term")):
        print(f"{name}: ignoring SIGTERM", flush=True)
        return
    print(f"{name}: SIGTERM, stopping", flush=True)
    threading.Thread(target=server.shutdown, daemon=True).start()


signal.signal(signal.SIGTERM, on_term)
print(f"{name}: listening on {url.hostname}:{url.port}", flush=True)
server.serve_forever()
print(f"{name}: stopped", flush=True)
