namespace Connect.Core.Hosting;

/// <summary>
/// Node-local notice that a content item changed (settings, active bundle, deletion), so per-node caches of the
/// front end drop their copy at once. Other nodes' caches expire on their own short lifetime.
/// </summary>
public sealed class ContentChanges
{
    public event Action<Guid>? Changed;

    public void Publish(Guid content) => Changed?.Invoke(content);
}
