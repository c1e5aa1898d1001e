using System.Collections.Concurrent;
using Connect.Core.Model;

using Microsoft.Extensions.Options;

namespace Connect.Data.Cluster;

/// <summary>
/// This node's view of every node's load and state, refreshed from the node registry on each heartbeat, plus the
/// placements this node made since (so that a burst of starts does not send every process to the node that looked
/// emptiest a second ago). Read by the placement director and the front end; never blocks.
/// </summary>
public sealed class ClusterNodes(IOptions<SchedulerDefaults> scheduler, TimeProvider time)
{
    private volatile IReadOnlyDictionary<string, NodeInfo> _bySilo = new Dictionary<string, NodeInfo>(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, int> _placedSinceRefresh = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _refusedSinceRefresh = new(StringComparer.Ordinal);
    /// <summary>
    /// Orleans runs placements on several workers at once, so a burst of starts chooses concurrently: each choice and
    /// its count must be one step, or two choices read the same counts and pile onto one node.
    /// </summary>
    private readonly Lock _placing = new();

    /// <summary>How old a heartbeat may be before the node is left out of placement.</summary>
    public TimeSpan StaleAfter { get; set; } = TimeSpan.FromSeconds(10);

    public IReadOnlyCollection<NodeInfo> Nodes => _bySilo.Values.ToArray();

    public void Update(IReadOnlyList<NodeInfo> nodes)
    {
        var bySilo = nodes.Where(n => !string.IsNullOrEmpty(n.SiloAddress))
            .GroupBy(n => n.SiloAddress, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => g.MaxBy(n => n.Heartbeat)!, StringComparer.Ordinal);
        lock (_placing)
        {
            _bySilo = bySilo;
            _placedSinceRefresh.Clear();
            _refusedSinceRefresh.Clear();
        }
    }

    /// <summary>
    /// The node on this silo refused a start (full or draining, which its last heartbeat did not show yet). It is left
    /// out until the next refresh: otherwise the same stale numbers would send the retry straight back to it.
    /// </summary>
    public void Refused(string silo) => _refusedSinceRefresh[silo] = 0;

    private volatile IReadOnlySet<string> _dead = new HashSet<string>(StringComparer.Ordinal);

    /// <summary>Silos the membership has declared dead: their processes are gone, whatever a cached route says.</summary>
    public void SetDeadSilos(IEnumerable<string> silos) => _dead = silos.ToHashSet(StringComparer.Ordinal);

    private readonly ConcurrentDictionary<string, DateTimeOffset> _unreachable = new(StringComparer.Ordinal);

    /// <summary>
    /// A node refused a call outright (its process is gone) before the membership declared it dead: treat it as dead
    /// for a while, so that no process is placed there and no request is sent there meanwhile.
    /// </summary>
    public void MarkUnreachable(string silo, TimeSpan duration) => _unreachable[silo] = time.GetUtcNow() + duration;

    public bool IsDead(string silo) =>
        _dead.Contains(silo) || (_unreachable.TryGetValue(silo, out var until) && time.GetUtcNow() < until);

    public NodeInfo? BySilo(string silo) => _bySilo.TryGetValue(silo, out var node) ? node : null;

    /// <summary>Whether the node on this silo is draining (its processes take no new sessions).</summary>
    public bool IsDraining(string silo) => BySilo(silo)?.Draining == true;

    /// <summary>
    /// The least-loaded eligible silo among <paramref name="candidates"/>: fewest processes of the same item
    /// (<paramref name="spreadFrom"/> lists the silos of its other processes), then fewest processes (counting this
    /// node's own placements since the last refresh), then lowest CPU load, then most free memory. Draining nodes, nodes
    /// at Scheduler:MaxProcessesPerNode, nodes whose heartbeat is stale, nodes that refused a start since the last
    /// refresh and nodes that are dead or refused a connection are not eligible; null when none is.
    /// </summary>
    public string? ChooseLeastLoaded(IEnumerable<string> candidates, IReadOnlyCollection<string>? spreadFrom = null, string? item = null)
    {
        var now = time.GetUtcNow();
        var limit = scheduler.Value.MaxProcessesPerNode;
        lock (_placing)
        {
            // Starts of one item issued together (min_processes) are placed before any of them is ready: the silos
            // chosen for the item in the last seconds count as its processes too.
            var recent = item is null ? null : RecentFor(item, now);
            var best = ChooseAndCount(candidates, spreadFrom, recent, now, limit);
            if (best is not null && recent is not null)
            {
                recent.Add((best, now));
            }
            return best;
        }
    }

    private readonly Dictionary<string, List<(string Silo, DateTimeOffset At)>> _recentByItem = new(StringComparer.Ordinal);

    private List<(string Silo, DateTimeOffset At)> RecentFor(string item, DateTimeOffset now)
    {
        foreach (var key in _recentByItem.Where(kv => kv.Value.All(p => now - p.At > RecentPlacement)).Select(kv => kv.Key).ToArray())
        {
            _recentByItem.Remove(key);
        }
        if (!_recentByItem.TryGetValue(item, out var list))
        {
            _recentByItem[item] = list = [];
        }
        list.RemoveAll(p => now - p.At > RecentPlacement);
        return list;
    }

    /// <summary>Longer than a process start takes: by then the item's grain lists the process among its own.</summary>
    private static readonly TimeSpan RecentPlacement = TimeSpan.FromSeconds(15);

    private string? ChooseAndCount(IEnumerable<string> candidates, IReadOnlyCollection<string>? spreadFrom,
        List<(string Silo, DateTimeOffset At)>? recent, DateTimeOffset now, int limit)
    {
        var bySilo = _bySilo;
        string? best = null;
        (int Siblings, int Processes, double Cpu, long Memory) bestScore = default;
        foreach (var silo in candidates)
        {
            if (!bySilo.TryGetValue(silo, out var node) || node.Draining || now - node.Heartbeat > StaleAfter
                || _refusedSinceRefresh.ContainsKey(silo) || IsDead(silo))
            {
                continue;
            }
            var processes = node.Processes + _placedSinceRefresh.GetValueOrDefault(silo);
            if (processes >= limit)
            {
                continue;
            }
            // The item's own processes first: spread over nodes, losing one node loses fewest of them.
            var siblings = Math.Max(spreadFrom?.Count(s => s == silo) ?? 0, recent?.Count(p => p.Silo == silo) ?? 0);
            var score = (siblings, processes, Math.Round(node.CpuLoad, 1), -node.MemoryBytes);
            if (best is null || score.CompareTo(bestScore) < 0)
            {
                best = silo;
                bestScore = score;
            }
        }
        if (best is not null)
        {
            _placedSinceRefresh.AddOrUpdate(best, 1, (_, n) => n + 1);
        }
        return best;
    }
}
