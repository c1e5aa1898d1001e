namespace Connect.Core.Hosting;

/// <summary>
/// The server's public base URL (no trailing slash): the configured Connect:ServerUrl, else the address the
/// server listens on, filled in at start. Used where no request is at hand (CONNECT_SERVER for processes).
/// </summary>
public sealed class ServerUrl
{
    private string? _listening;

    public ServerUrl(string? configured) => Configured = configured?.TrimEnd('/');

    public string? Configured { get; }

    public void SetListeningAddress(string address) => _listening = address.TrimEnd('/');

    public string Value => Configured ?? _listening ?? "http://127.0.0.1:3939";

    /// <summary>The path part of the public URL ("" or e.g. "/connect"), prefixed to content paths.</summary>
    public string PathBase => Configured is null ? "" : new Uri(Configured + "/").AbsolutePath.TrimEnd('/');
}
