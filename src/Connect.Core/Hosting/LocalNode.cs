namespace Connect.Core.Hosting;

/// <summary>
/// This node as the rest of the cluster sees it: its name, where its front end is reached for the internal hop,
/// its silo, and whether it is draining. Readiness for the load balancer is read from here.
/// </summary>
public sealed class LocalNode(string name, TimeProvider time)
{
    private volatile string _internalUrl = "";
    private volatile string _silo = "";
    private long _databaseSeenTicks;
    private volatile bool _draining;
    private volatile bool _joined;

    public string Name { get; } = name;

    public DateTimeOffset StartedTime { get; } = time.GetUtcNow();

    /// <summary>e.g. http://10.0.3.17:3939; set once Kestrel listens (or from Cluster:InternalUrl).</summary>
    public string InternalUrl => _internalUrl;

    /// <summary>The silo's parsable address; set once the silo runs.</summary>
    public string Silo => _silo;

    public bool Draining => _draining;

    /// <summary>The silo is an active member of the cluster.</summary>
    public bool Joined => _joined;

    /// <summary>When the catalog last answered this node.</summary>
    public DateTimeOffset DatabaseSeen => new(Interlocked.Read(ref _databaseSeenTicks), TimeSpan.Zero);

    public void SetInternalUrl(string url) => _internalUrl = url.TrimEnd('/');

    public void SetSilo(string silo) => _silo = silo;

    public void SetJoined(bool joined) => _joined = joined;

    public void BeginDrain() => _draining = true;

    public void DatabaseAnswered(DateTimeOffset at) => Interlocked.Exchange(ref _databaseSeenTicks, at.UtcTicks);

    /// <summary>Why the load balancer should not send new requests here, or null when ready.</summary>
    public string? NotReadyReason(DateTimeOffset now, TimeSpan databaseGrace)
    {
        if (_draining) return "draining";
        if (!_joined) return "the silo has not joined the cluster";
        if (now - DatabaseSeen > databaseGrace) return "the database has not answered recently";
        return null;
    }
}
