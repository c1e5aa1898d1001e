namespace Connect.Server;

/// <summary>
/// The pages at <c>/</c> and <c>/connect/</c> until the browser UI arrives: the dashboard URL Connect returns
/// (<c>/connect/#/apps/{guid}</c>) carries the item in its fragment, which only the browser sees.
/// </summary>
internal static class LandingPages
{
    private const string Page = """
        <!DOCTYPE html>
        <html lang="en"><head><meta charset="utf-8"><title>Connect</title>
        <style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:3rem auto;padding:0 1rem;color:#222}</style></head>
        <body><h1>Connect</h1>
        <p id="app">Publish with <code>rsconnect deploy</code> or the HTTP API under <code>/__api__/</code>; content is served at <code>/content/&lt;guid&gt;/</code>.</p>
        <script>
          const m = location.hash.match(/^#\/apps\/([0-9a-fA-F-]{36})/);
          if (m) {
            const p = document.getElementById("app");
            p.textContent = "Content " + m[1] + ": ";
            const a = document.createElement("a");
            a.href = "../content/" + m[1] + "/";
            a.textContent = "open it";
            p.appendChild(a);
          }
        </script></body></html>
        """;

    public static void Map(WebApplication app)
    {
        app.MapGet("/", () => TypedResults.Content(Page, "text/html; charset=utf-8"));
        app.MapGet("/connect", () => TypedResults.Redirect("/connect/"));
        app.MapGet("/connect/", () => TypedResults.Content(Page, "text/html; charset=utf-8"));
    }
}
