"""Connect's launcher for Python web content.

The Connect server runs it with the content's Python environment:

    python connect_launcher.py --kind wsgi|asgi --entrypoint ENTRY (--socket PATH | --port PORT) --root-path PATH --bundle DIR

It imports the application named by ENTRY ("module" or "module:object") from the bundle directory and serves it on the
Unix socket PATH (what the sandbox uses: only the front end can reach it) or on 127.0.0.1:PORT until it receives
SIGTERM. The proxy in front strips the public prefix (/content/<guid>), so requests
arrive relative to "/"; PATH is what the application is mounted under (SCRIPT_NAME for WSGI, root_path for ASGI), so
the URLs it generates are public ones. It must keep working on every Python Connect supports (3.8+).
"""
import argparse
import importlib
import inspect
import os
import signal
import sys
import traceback

DEFAULT_OBJECTS = ("app", "application", "create_app", "make_app")
FACTORIES = ("create_app", "make_app")
HOST = "127.0.0.1"


class LaunchError(Exception):
    pass


def say(message):
    sys.stderr.write("connect-launcher: %s\n" % message)
    sys.stderr.flush()


def parse_entrypoint(entrypoint):
    entrypoint = (entrypoint or "").strip() or "app"
    module_name, _, object_name = entrypoint.partition(":")
    module_name = module_name.strip()
    if module_name.endswith(".py"):
        module_name = module_name[:-3].replace("/", ".")
    return module_name, object_name.strip()


def load_app(entrypoint):
    module_name, object_name = parse_entrypoint(entrypoint)
    module = importlib.import_module(module_name)
    if object_name:
        name = object_name
    else:
        found = [n for n in DEFAULT_OBJECTS if getattr(module, n, None) is not None]
        if not found:
            raise LaunchError(
                "module '%s' defines none of %s; name the object in the entrypoint ('%s:object')"
                % (module_name, ", ".join(DEFAULT_OBJECTS), module_name))
        name = found[0]
    obj = module
    for part in name.split("."):
        if not hasattr(obj, part):
            raise LaunchError("module '%s' has no attribute '%s'" % (module_name, name))
        obj = getattr(obj, part)
    # Only plain functions count as factories: an application object is callable too.
    if name.rsplit(".", 1)[-1] in FACTORIES and (inspect.isfunction(obj) or inspect.ismethod(obj)):
        obj = obj()
    if obj is None or not callable(obj):
        raise LaunchError("'%s:%s' is not an application (got %r)" % (module_name, name, obj))
    return obj, "%s:%s" % (module_name, name)


def mount_wsgi(app, root_path):
    def mounted(environ, start_response):
        environ["SCRIPT_NAME"] = root_path
        return app(environ, start_response)

    return mounted


def describe(port, socket_path):
    return "unix:%s" % socket_path if socket_path else "http://%s:%d" % (HOST, port)


def serve_wsgi(app, port, socket_path, root_path, label):
    wsgi = mount_wsgi(app, root_path)
    try:
        from werkzeug.serving import WSGIRequestHandler, run_simple
    except ImportError:
        run_simple = None
    if run_simple is not None:
        class KeepAliveHandler(WSGIRequestHandler):
            # werkzeug speaks HTTP/1.0 by default, closing every connection: the front end's pooled connections
            # would then cost a TCP handshake and a new thread per request.
            protocol_version = "HTTP/1.1"

        say("serving WSGI application %s with werkzeug on %s (mounted at '%s')" % (label, describe(port, socket_path), root_path))
        # werkzeug binds a Unix socket when the host is "unix://PATH".
        host = "unix://" + socket_path if socket_path else HOST
        run_simple(host, port or 0, wsgi, threaded=True, use_reloader=False, use_debugger=False, request_handler=KeepAliveHandler)
        return
    from socketserver import ThreadingMixIn, UnixStreamServer
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        allow_reuse_address = True

    class Handler(WSGIRequestHandler):
        def log_message(self, format, *args):
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    class UnixHandler(Handler):
        def setup(self):
            # A Unix peer has no (host, port); the environ wants REMOTE_ADDR from one.
            self.client_address = ("127.0.0.1", 0)
            Handler.setup(self)

    class ThreadingUnixWSGIServer(ThreadingMixIn, UnixStreamServer):
        # wsgiref's server assumes a (host, port) address; over a Unix socket the environ is set up here instead.
        daemon_threads = True
        application = None

        def get_app(self):
            return self.application

        def server_bind(self):
            UnixStreamServer.server_bind(self)
            self.base_environ = {"SERVER_NAME": "localhost", "SERVER_PORT": "80", "GATEWAY_INTERFACE": "CGI/1.1",
                                 "CONTENT_LENGTH": "", "SCRIPT_NAME": ""}

    if socket_path:
        server = ThreadingUnixWSGIServer(socket_path, UnixHandler)
        server.application = wsgi
    else:
        server = make_server(HOST, port, wsgi, server_class=ThreadingWSGIServer, handler_class=Handler)
    say("serving WSGI application %s with wsgiref on %s (mounted at '%s')" % (label, describe(port, socket_path), root_path))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def serve_asgi(app, port, socket_path, root_path, label):
    try:
        import uvicorn
    except ImportError:
        say("ASGI content needs uvicorn, which is not installed in this environment (add it to requirements.txt)")
        sys.exit(2)
    say("serving ASGI application %s with uvicorn %s on %s (root_path '%s')"
        % (label, getattr(uvicorn, "__version__", "?"), describe(port, socket_path), root_path))
    if socket_path:
        uvicorn.run(app, uds=socket_path, root_path=root_path, log_level="info")
    else:
        uvicorn.run(app, host=HOST, port=port, root_path=root_path, log_level="info")


def on_sigterm(signum, frame):
    # Lets the WSGI servers leave serve_forever through their KeyboardInterrupt path and close the socket cleanly.
    raise KeyboardInterrupt()


def main(argv):
    parser = argparse.ArgumentParser(prog="connect_launcher")
    parser.add_argument("--kind", choices=("wsgi", "asgi"), required=True)
    parser.add_argument("--entrypoint", default="app")
    listen = parser.add_mutually_exclusive_group(required=True)
    listen.add_argument("--port", type=int)
    listen.add_argument("--socket")
    parser.add_argument("--root-path", default="")
    parser.add_argument("--bundle", required=True)
    args = parser.parse_args(argv)

    bundle = os.path.abspath(args.bundle)
    root_path = args.root_path.rstrip("/")
    os.chdir(bundle)
    # Replace the launcher's own directory: the application's modules come from the bundle, never from here.
    sys.path[0] = bundle

    try:
        app, label = load_app(args.entrypoint)
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        say("could not load the application '%s' from %s: %s: %s"
            % (args.entrypoint, bundle, type(error).__name__, error))
        traceback.print_exc()
        sys.exit(1)

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if args.kind == "wsgi":
            serve_wsgi(app, args.port, args.socket, root_path, label)
        else:
            serve_asgi(app, args.port, args.socket, root_path, label)
    except KeyboardInterrupt:
        pass
    say("stopped")


if __name__ == "__main__":
    main(sys.argv[1:])
