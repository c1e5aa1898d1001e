// Clusters are timing-sensitive (failure detection) and the machines have two cores: one cluster at a time.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
