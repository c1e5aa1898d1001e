namespace Connect.Core.Hosting;

/// <summary>
/// Notice that a content item changed (settings, access, active bundle, processes, deletion) or that API keys or
/// users changed, so that every node's caches drop their copy at once. Local subscribers hear it at once; in a
/// cluster a broadcast (PostgreSQL LISTEN/NOTIFY) carries it to the other nodes, whose subscribers hear it as well.
/// </summary>
public sealed class ContentChanges
{
    private IChangeBroadcast? _broadcast;

    public event Action<Guid>? Changed;

    /// <summary>API keys were deleted or users changed somewhere: cached key lookups must be forgotten.</summary>
    public event Action? KeysChanged;

    /// <summary>Connects the cluster broadcast (cluster mode only).</summary>
    public void UseBroadcast(IChangeBroadcast broadcast) => _broadcast = broadcast;

    public void Publish(Guid content)
    {
        Changed?.Invoke(content);
        _broadcast?.Send(ChangeNotice.ForContent(content));
    }

    public void PublishKeys()
    {
        KeysChanged?.Invoke();
        _broadcast?.Send(ChangeNotice.Keys);
    }

    /// <summary>A notice from another node: raised here, not sent on.</summary>
    public void Receive(ChangeNotice notice)
    {
        if (notice.Content is { } content)
        {
            Changed?.Invoke(content);
        }
        else
        {
            KeysChanged?.Invoke();
        }
    }
}

/// <summary>One change: a content item (by GUID), or the API keys as a whole.</summary>
public readonly record struct ChangeNotice(Guid? Content)
{
    public static ChangeNotice Keys => new(null);

    public static ChangeNotice ForContent(Guid content) => new(content);

    public override string ToString() => Content is { } c ? "c:" + c.ToString("N") : "k";

    public static ChangeNotice? Parse(string text) =>
        text == "k" ? Keys
        : text.StartsWith("c:", StringComparison.Ordinal) && Guid.TryParseExact(text[2..], "N", out var g) ? ForContent(g)
        : null;
}

/// <summary>Carries change notices to the other nodes of a cluster; must not block the caller.</summary>
public interface IChangeBroadcast
{
    void Send(ChangeNotice notice);
}
