using Connect.Abstractions;
using Connect.Core.Content;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data;
using Connect.Data.Cluster;
using Connect.Data.Security;
using Connect.Data.Sqlite;
using Connect.Grains.Cluster;
using Connect.Grains.Deployment;
using Connect.Grains.Processes;
using Connect.Runtime.Python;
using Connect.Runtime.Sandbox;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Orleans.Configuration;
using Orleans.Runtime;
using Orleans.TestingHost;

namespace Connect.Grains.Tests;

/// <summary>One silo's load as the node registry would report it, fed to every silo's placement view.</summary>
public sealed record Load(int Silo, int Processes, bool Draining = false);

/// <summary>
/// An in-process Orleans cluster composed like ConnectServer composes a node, but with a fake process host per silo,
/// one SQLite catalog over a temporary file shared by all silos (as PostgreSQL is in a real cluster), and one
/// <see cref="FakeTimeProvider"/> for everything that reads the time. Orleans keeps real time for membership,
/// messaging and collection, so failure detection still works; grain timers follow the fake clock.
/// </summary>
public sealed class GrainCluster : IAsyncDisposable
{
    public const int MaxProcessesPerNode = 8;
    public const int BackoffSeconds = 10;

    private readonly string _directory;
    private readonly List<Guid> _contents = [];
    private Guid _owner;

    private GrainCluster(InProcessTestCluster cluster, FakeTimeProvider time, SqliteCatalogStore store, FakeNodes nodes, string directory)
    {
        Cluster = cluster;
        Time = time;
        Store = store;
        Nodes = nodes;
        _directory = directory;
    }

    public InProcessTestCluster Cluster { get; }
    public FakeTimeProvider Time { get; }
    public ICatalogStore Store { get; }
    public FakeNodes Nodes { get; }

    /// <summary>Silos in start order, fixed for the life of the cluster (killed ones stay, so indexes keep meaning).</summary>
    public IReadOnlyList<InProcessSiloHandle> Silos { get; private set; } = [];

    public IClusterClient Client => Cluster.Client;

    public static async Task<GrainCluster> StartAsync(short silos = 3)
    {
        var directory = Directory.CreateTempSubdirectory("connect-grains-").FullName;
        var store = new SqliteCatalogStore(Path.Combine(directory, "catalog.db"));
        await store.MigrateAsync();
        // Starts at the real time: Orleans compares some grain-clock readings (keep-alive) with its own real clock.
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var nodes = new FakeNodes();
        var scheduler = new SchedulerDefaults
        {
            MaxProcessesPerNode = MaxProcessesPerNode,
            RestartBackoffInitialSeconds = BackoffSeconds,
            RestartBackoffMaxSeconds = 6 * BackoffSeconds,
        };
        var paths = new DataPaths(Path.Combine(directory, "data"));

        var builder = new InProcessTestClusterBuilder(silos);
        // Orleans's own logs, under logs/ next to the test binary, only when asked for (GRAIN_TEST_LOGS=1): a failing test's trail.
        builder.Options.ConfigureFileLogging = Environment.GetEnvironmentVariable("GRAIN_TEST_LOGS") == "1";
        builder.ConfigureSiloHost((options, host) =>
        {
            var services = host.Services;
            services.AddSingleton<TimeProvider>(time);
            services.UseTimeProviderForBackgroundAreas(TimeProvider.System);
            services.AddSingleton<ICatalogStore>(store);
            services.AddSingleton(Options.Create(scheduler));
            services.AddSingleton(Options.Create(new ConnectOptions()));
            services.AddSingleton(paths);
            services.AddSingleton(sp =>
            {
                var node = new LocalNode("node-" + options.SiloName, time);
                node.SetSilo(sp.GetRequiredService<ILocalSiloDetails>().SiloAddress.ToParsableString());
                node.SetInternalUrl($"http://{options.SiloName}.test:3939");
                return node;
            });
            services.AddSingleton<ClusterNodes>();
            services.AddSingleton<ContentChanges>();
            services.AddSingleton<ApiKeyCache>();
            services.AddSingleton(nodes);
            services.AddSingleton<FakeProcessHost>();
            services.AddSingleton<IProcessHost>(sp => sp.GetRequiredService<FakeProcessHost>());
            // The ContentGrain takes the deployment pipeline; these tests deploy nothing, so it gets inert parts.
            var python = new PythonOptions();
            var applications = new ApplicationsOptions();
            services.AddSingleton(python);
            services.AddSingleton(applications);
            services.AddSingleton(sp => new ContentSandbox(new SandboxOptions { Mode = SandboxMode.Disabled }, applications, sp.GetRequiredService<ILogger<ContentSandbox>>()));
            services.AddSingleton(sp => new PythonInstallations(python, sp.GetRequiredService<ILogger<PythonInstallations>>()));
            services.AddSingleton(sp => new PythonEnvironmentManager(paths.PythonEnvironments, python, sp.GetRequiredService<ILogger<PythonEnvironmentManager>>()));
            services.AddSingleton<DeploymentPipeline>();
        });
        builder.ConfigureSilo((_, silo) =>
        {
            silo.Services.AddPlacementDirector<LeastLoadedPlacement, LeastLoadedPlacementDirector>();
            silo.Services.AddPlacementDirector<NodePlacement, NodePlacementDirector>();
            // As ConnectServer does (and FACTS.md measured): a killed silo is declared dead in about a second.
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                o.ProbeTimeout = TimeSpan.FromSeconds(1);
                o.NumMissedProbesLimit = 2;
            });
            // Orleans waits between placement retries on the default TimeProvider, the fake clock here: without this a
            // retried placement (a node grain for a silo that left) would wait for a test to move the clock.
            silo.Configure<SiloMessagingOptions>(o => o.PlacementRetryBaseDelay = TimeSpan.Zero);
        });
        var cluster = builder.Build();
        await cluster.DeployAsync();
        await WaitUntilEverySiloSeesAllAsync(cluster, silos);
        var grains = new GrainCluster(cluster, time, store, nodes, directory)
        {
            Silos = cluster.Silos.ToArray(),
        };
        grains._owner = (await store.CreateUserAsync(new NewUser("owner", UserRoles.Publisher, time.GetUtcNow()))).Guid;
        return grains;
    }

    /// <summary>
    /// Placement picks among the silos its own silo knows to be active; right after deployment a silo may not know all
    /// the others yet, and would keep every process to itself. Membership needs time, so this polls, with a deadline.
    /// </summary>
    private static async Task WaitUntilEverySiloSeesAllAsync(InProcessTestCluster cluster, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(20);
        while (!cluster.Silos.All(s => s.ServiceProvider.GetRequiredService<ISiloStatusOracle>().GetActiveSilos().Length == count))
        {
            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"the {count} silos did not all see each other as active within 20 s");
            }
            await Task.Delay(20);
        }
    }

    public FakeProcessHost Host(int silo) => Silos[silo].ServiceProvider.GetRequiredService<FakeProcessHost>();

    public string SiloName(int silo) => Silos[silo].SiloAddress.ToParsableString();

    /// <summary>The node's name, known even after its silo died (as the registry row still is).</summary>
    public string NodeName(int silo) => "node-" + Silos[silo].Name;

    public int IndexOf(string silo) => Silos.Select(s => s.SiloAddress.ToParsableString()).ToList().IndexOf(silo);

    public IEnumerable<int> LiveSilos => Enumerable.Range(0, Silos.Count).Where(i => Silos[i].IsActive);

    public IContentGrain Content(Guid content) => Client.GetGrain<IContentGrain>(content);

    /// <summary>What the node registry would say after a heartbeat of every node, given to every live silo's view.</summary>
    public void FeedLoads(params Load[] loads)
    {
        var now = Time.GetUtcNow();
        var rows = loads.Select(l => new NodeInfo(NodeName(l.Silo), SiloName(l.Silo), "", l.Processes, 8L << 30, 0.1, l.Draining, now, now)).ToArray();
        foreach (var silo in LiveSilos)
        {
            Silos[silo].ServiceProvider.GetRequiredService<ClusterNodes>().Update(rows);
        }
    }

    /// <summary>Every live silo reports no processes.</summary>
    public void FeedEqualLoads() => FeedLoads(LiveSilos.Select(i => new Load(i, 0)).ToArray());

    /// <summary>A deployed interactive item (a Python API) with its own scaling settings.</summary>
    public async Task<Guid> CreateContentAsync(int min, int max)
    {
        var now = Time.GetUtcNow();
        var item = await Store.CreateContentAsync(new ContentSettings
        {
            Name = "app-" + Guid.NewGuid().ToString("N")[..8],
            OwnerGuid = _owner,
            Runtime = new RuntimeSettings { MinProcesses = min, MaxProcesses = max },
        }, now);
        var bundle = await Store.AddBundleAsync(new NewBundle(item.Guid, _owner, 1, "md5", "sha1", now));
        await Store.ActivateBundleAsync(item.Guid, new BundleActivation(bundle.Id, AppModes.PythonApi, "3.11.7", "app:app", "api", now), item.RowVersion);
        _contents.Add(item.Guid);
        return item.Guid;
    }

    /// <summary>Processes of the item on every live node, with the index of the silo that runs each.</summary>
    public IReadOnlyList<(int Silo, FakeProcess Process)> Running(Guid content) =>
        LiveSilos.SelectMany(i => Host(i).Running(content).Select(p => (i, p))).ToArray();

    public int Starts(Guid content) => LiveSilos.Sum(i => Host(i).Starts(content));

    /// <summary>
    /// The item's processes once its grain knows <paramref name="count"/> of them. The grain records a start when the
    /// process grain's answer comes back, a moment after the fake host has the process, and raises no event for it:
    /// this asks until it has, with a deadline.
    /// </summary>
    public async Task<IReadOnlyList<ProcessEndpoint>> KnownProcessesAsync(Guid content, int count)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var known = await Content(content).GetProcessesAsync();
            if (known.Count == count)
            {
                return known;
            }
            Assert.True(DateTime.UtcNow < deadline, $"the grain knows {known.Count} processes, not {count}");
            await Task.Delay(10);
        }
    }

    /// <summary>
    /// Leaves the cluster as a new test expects it: earlier items deleted (their grains stop their processes and
    /// timers), fake hosts empty and honest, equal loads everywhere.
    /// </summary>
    public async Task ResetAsync()
    {
        foreach (var content in _contents)
        {
            try
            {
                await Content(content).DeleteAsync();
            }
            catch (ContentNotFoundException)
            {
            }
        }
        _contents.Clear();
        foreach (var silo in LiveSilos)
        {
            Host(silo).Reset();
        }
        FeedEqualLoads();
    }

    public async ValueTask DisposeAsync()
    {
        await Cluster.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>One three-silo cluster for the tests that leave it whole (each starts with <see cref="GrainCluster.ResetAsync"/>).</summary>
public sealed class SharedCluster : IAsyncLifetime
{
    public GrainCluster Grains { get; private set; } = null!;

    public async Task InitializeAsync() => Grains = await GrainCluster.StartAsync();

    public async Task DisposeAsync() => await Grains.DisposeAsync();
}

[CollectionDefinition(Name)]
public sealed class SharedClusterCollection : ICollectionFixture<SharedCluster>
{
    public const string Name = "shared cluster";
}
