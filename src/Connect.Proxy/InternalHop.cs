using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Forwarder;

namespace Connect.Proxy;

/// <summary>The internal route between nodes' front ends and the headers it carries.</summary>
public static class InternalRoutes
{
    /// <summary>Followed by the process id (32 hex digits) and the path for the process.</summary>
    public const string ProcessPrefix = "/__internal__/processes/";

    /// <summary>The cluster secret's hop token: without it the route is a plain 404.</summary>
    public const string TokenHeader = "X-Connect-Hop";

    /// <summary>max_conns_per_process for this connection, as the sending node's policy says (pinned sessions: no limit).</summary>
    public const string LimitHeader = "X-Connect-Hop-Limit";

    /// <summary>The connection timeout in seconds.</summary>
    public const string TimeoutHeader = "X-Connect-Hop-Timeout";

    /// <summary>Set on the receiving node's refusal: <see cref="Saturated"/> or <see cref="Gone"/>.</summary>
    public const string RefusalHeader = "X-Connect-Hop-Refused";

    public const string Saturated = "saturated";
    public const string Gone = "gone";

    internal static readonly string[] All = [TokenHeader, LimitHeader, TimeoutHeader];
}

/// <summary>What the sending node adds to a request it forwards over the hop.</summary>
internal sealed record InternalHop(string Token, int Limit, TimeSpan Timeout);

/// <summary>
/// On the node that runs the process: the request arrives shaped by the sending node (prefix stripped, forwarding
/// headers, credentials removed); only the hop's own headers go, and the path becomes the process's.
/// </summary>
internal sealed class HopTransformer(string remainderPath) : HttpTransformer
{
    public override async ValueTask TransformRequestAsync(HttpContext context, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(context, proxyRequest, destinationPrefix, cancellationToken);
        proxyRequest.RequestUri = new Uri(destinationPrefix + remainderPath + context.Request.QueryString.Value);
        foreach (var header in InternalRoutes.All)
        {
            proxyRequest.Headers.Remove(header);
        }
        // The sending node set the forwarding headers for the viewer; keep them, and the viewer's Host.
        proxyRequest.Headers.Host = context.Request.Host.Value;
    }
}

/// <summary>
/// This node's counts of requests in flight over the hop: those it sent to each process on another node, and those
/// other nodes sent to each of its own processes. The node running a process enforces the real limit; these only let
/// the front end compare like with like when it spreads its own requests — what it sent to a remote process against
/// what its own viewers hold on a local one — and tell it when to ask for another process.
/// </summary>
public sealed class RemoteLoads
{
    private readonly ConcurrentDictionary<Guid, int> _outbound = new();
    private readonly ConcurrentDictionary<Guid, int> _inbound = new();

    /// <summary>Requests this node has in flight to a process on another node.</summary>
    public int Get(Guid process) => _outbound.GetValueOrDefault(process);

    /// <summary>Requests other nodes have in flight to a process of this node.</summary>
    public int Inbound(Guid process) => _inbound.GetValueOrDefault(process);

    public IDisposable Enter(Guid process) => Enter(_outbound, process);

    public IDisposable EnterInbound(Guid process) => Enter(_inbound, process);

    private static Scope Enter(ConcurrentDictionary<Guid, int> counts, Guid process)
    {
        counts.AddOrUpdate(process, 1, (_, n) => n + 1);
        return new Scope(counts, process);
    }

    private static void Leave(ConcurrentDictionary<Guid, int> counts, Guid process)
    {
        while (counts.TryGetValue(process, out var n))
        {
            if (n <= 1 ? counts.TryRemove(new KeyValuePair<Guid, int>(process, n)) : counts.TryUpdate(process, n - 1, n))
            {
                return;
            }
        }
    }

    private sealed class Scope(ConcurrentDictionary<Guid, int> counts, Guid process) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Leave(counts, process);
            }
        }
    }
}
