using Connect.Server.Tests.Infrastructure;

namespace Connect.Server.Tests.Cluster;

/// <summary>
/// A stateful interactive app (deployed as python-shiny, an ASGI app like Shiny for Python): each process counts the
/// requests and WebSocket messages it has seen and names its job, so a test can tell which process, on which node,
/// answered, and whether a session's state survived.
/// </summary>
public static class SessionApp
{
    /// <summary>The ASGI lifespan handshake both apps answer (uvicorn runs it).</summary>
    private const string Lifespan = """
        async def lifespan(receive, send):
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return

        """;

    public const string Source = Lifespan + """
        import json, os

        JOB = os.environ.get("CONNECT_CONTENT_JOB_KEY", "")
        hits = {"n": 0}

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            elif scope["type"] == "http":
                hits["n"] += 1
                body = json.dumps({"job": JOB, "hits": hits["n"], "path": scope["path"]}).encode()
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
            elif scope["type"] == "websocket":
                await receive()
                await send({"type": "websocket.accept"})
                count = 0
                while True:
                    message = await receive()
                    if message["type"] == "websocket.disconnect":
                        return
                    count += 1
                    await send({"type": "websocket.send", "text": json.dumps({"job": JOB, "n": count, "echo": message.get("text")})})
        """;

    public static byte[] Bundle() => Bundles.Create("python-shiny", new Dictionary<string, string> { ["app.py"] = Source, ["requirements.txt"] = "" },
        entrypoint: "app:app", pythonVersion: "3.11.2");

    /// <summary>A stateless API: which job answered.</summary>
    public const string ApiSource = Lifespan + """
        import json, os

        JOB = os.environ.get("CONNECT_CONTENT_JOB_KEY", "")

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                await lifespan(receive, send)
            elif scope["type"] == "http":
                body = json.dumps({"job": JOB}).encode()
                await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
                await send({"type": "http.response.body", "body": body})
        """;

    public static byte[] ApiBundle() => Bundles.Create("python-fastapi", new Dictionary<string, string> { ["app.py"] = ApiSource, ["requirements.txt"] = "" },
        entrypoint: "app:app", pythonVersion: "3.11.2");
}
