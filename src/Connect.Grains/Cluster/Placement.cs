using Connect.Data.Cluster;
using Orleans.Placement;
using Orleans.Runtime;
using Orleans.Runtime.Placement;

namespace Connect.Grains.Cluster;

/// <summary>Places a process grain on the least-loaded node that can take it (see <see cref="ClusterNodes.ChooseLeastLoaded"/>).</summary>
[GenerateSerializer, Immutable, Alias("Connect.LeastLoadedPlacement")]
public sealed class LeastLoadedPlacement : PlacementStrategy
{
    public static readonly LeastLoadedPlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class LeastLoadedPlacementAttribute() : PlacementAttribute(LeastLoadedPlacement.Instance);

public sealed class LeastLoadedPlacementDirector(ClusterNodes nodes) : IPlacementDirector
{
    /// <summary>Request-context key: the silos (comma-separated) of the item's other processes, which the new one avoids.</summary>
    public const string SiblingsKey = "connect.siblings";

    /// <summary>Request-context key: the item the process is for (its starts issued together are spread too).</summary>
    public const string ItemKey = "connect.item";

    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var compatible = context.GetCompatibleSilos(target);
        var byName = compatible.ToDictionary(s => s.ToParsableString(), StringComparer.Ordinal);
        var siblings = target.RequestContextData?.TryGetValue(SiblingsKey, out var value) == true && value is string list
            ? list.Split(',', StringSplitOptions.RemoveEmptyEntries)
            : [];
        var item = target.RequestContextData?.TryGetValue(ItemKey, out var id) == true ? id as string : null;
        if (nodes.ChooseLeastLoaded(byName.Keys, siblings, item) is { } chosen)
        {
            return Task.FromResult(byName[chosen]);
        }
        // No node is eligible (all full or draining, or the registry has not been read yet): place it here; the process
        // grain refuses the start if this node cannot take it, and the ContentGrain reports that.
        var local = compatible.Contains(context.LocalSilo) ? context.LocalSilo : compatible[Random.Shared.Next(compatible.Length)];
        return Task.FromResult(local);
    }
}

/// <summary>Places a node grain on the silo its key names: it is that node's face, and must not exist anywhere else.</summary>
[GenerateSerializer, Immutable, Alias("Connect.NodePlacement")]
public sealed class NodePlacement : PlacementStrategy
{
    public static readonly NodePlacement Instance = new();
}

[AttributeUsage(AttributeTargets.Class, AllowMultiple = false)]
public sealed class NodePlacementAttribute() : PlacementAttribute(NodePlacement.Instance);

public sealed class NodePlacementDirector : IPlacementDirector
{
    public Task<SiloAddress> OnAddActivation(PlacementStrategy strategy, PlacementTarget target, IPlacementContext context)
    {
        var key = target.GrainIdentity.Key.ToString();
        var silo = context.GetCompatibleSilos(target).FirstOrDefault(s => s.ToParsableString() == key);
        return silo is not null
            ? Task.FromResult(silo)
            : throw new SiloUnavailableException($"node {key} is not an active member of the cluster");
    }
}
