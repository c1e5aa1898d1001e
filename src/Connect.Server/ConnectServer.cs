using Connect.Api;
using Connect.Api.Http;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data;
using Connect.Data.Security;
using Connect.Data.Cluster;
using Connect.Data.Postgres;
using Connect.Grains.Cluster;
using Connect.Server.Cluster;
using Connect.Grains.Deployment;
using Connect.Grains.Processes;
using Connect.Proxy;
using Connect.Runtime.Python;
using Connect.Runtime.Sandbox;
using Connect.Runtime.Supervision;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;
using Orleans.Configuration;

namespace Connect.Server;

/// <summary>Composes one Connect node: an Orleans silo with Kestrel serving the API and the content front end.</summary>
public static class ConnectServer
{
    public const string DefaultUrl = "http://127.0.0.1:3939";

    /// <summary>Logging defaults shipped with the server, next to its binary.</summary>
    public const string ShippedSettingsFile = "appsettings.json";

    public static async Task<WebApplication> BuildAsync(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateBuilder(args);
        // The shipped appsettings.json sits next to the binary, but the host reads appsettings.json from the working
        // directory (the data directory under systemd). Added first, it is the lowest layer: an operator's
        // appsettings.json, environment variables and the command line all override it.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Json.JsonConfigurationSource
        {
            Path = ShippedSettingsFile,
            Optional = true,
            FileProvider = new Microsoft.Extensions.FileProviders.PhysicalFileProvider(AppContext.BaseDirectory),
        });
        configure?.Invoke(builder);
        var config = ConnectConfiguration.Bind(builder.Configuration);
        var problems = config.Validate();
        if (problems.Count > 0)
        {
            throw new ConfigurationProblemsException(problems);
        }
        if (string.IsNullOrEmpty(builder.Configuration[WebHostDefaults.ServerUrlsKey]))
        {
            builder.WebHost.UseUrls(DefaultUrl);
        }

        var paths = new DataPaths(config.Connect.DataDir, config.ScratchDirectory);
        paths.EnsureCreated();
        var store = CatalogStores.Create(config.Storage, paths.DatabaseFile);
        try
        {
            await store.MigrateAsync();
        }
        catch (CatalogUnavailableException e)
        {
            // A node that cannot reach its database must not half-start: say why and stop.
            throw new ConfigurationProblemsException([e.Message]);
        }

        // The sandbox is set up before anything can run content: in Required mode a host that cannot isolate
        // content stops the server here, with every reason at once.
        // The sandbox (and the limiter it holds, which logs for the life of the node) logs through a factory made
        // before the host exists, with the host's logging configuration; it is disposed when the host stops.
        var sandboxLogs = LoggerFactory.Create(logging => logging.AddConfiguration(builder.Configuration.GetSection("Logging")).AddConsole());
        var sandbox = new ContentSandbox(config.Sandbox, config.Applications, sandboxLogs.CreateLogger<ContentSandbox>());
        var sandboxProblems = sandbox.Initialize(config.NodeName, config.Orleans.SiloPort, [config.Orleans.SiloPort],
            [AppContext.BaseDirectory, builder.Environment.ContentRootPath, paths.Root, paths.Scratch], paths.Root);
        if (sandboxProblems.Count > 0)
        {
            sandboxLogs.Dispose();
            throw new ConfigurationProblemsException([.. sandboxProblems.Select(p => "Sandbox:Mode=Required, but " + p)]);
        }
        builder.Services.AddSingleton(sandbox);
        AddServices(builder.Services, config, paths, store);
        builder.UseOrleans(silo =>
        {
            if (config.IsCluster)
            {
                ConfigureCluster(silo, config);
            }
            else
            {
                // Single node: the silo is its own cluster on loopback; no gateway, since clients are in-process.
                silo.UseLocalhostClustering(siloPort: config.Orleans.SiloPort, gatewayPort: 0, serviceId: config.Orleans.ServiceId, clusterId: config.Orleans.ClusterId);
            }
            silo.Configure<ClusterMembershipOptions>(o =>
            {
                // Measured here: a killed silo is declared dead in 0.6-1.5 s instead of 7-12 s, a hung one in 2-3 s.
                o.ProbeTimeout = TimeSpan.FromSeconds(config.Cluster.ProbeTimeoutSeconds);
                o.NumMissedProbesLimit = config.Cluster.MissedProbesLimit;
                o.EnableIndirectProbes = true;
            });
            silo.Services.AddPlacementDirector<LeastLoadedPlacement, LeastLoadedPlacementDirector>();
            silo.Services.AddPlacementDirector<NodePlacement, NodePlacementDirector>();
            silo.Configure<SiloMessagingOptions>(o => o.ResponseTimeout = TimeSpan.FromSeconds(config.Orleans.ResponseTimeoutSeconds));
            silo.Configure<GrainCollectionOptions>(o =>
            {
                o.CollectionAge = TimeSpan.FromSeconds(config.Orleans.CollectionAgeSeconds);
                o.CollectionQuantum = TimeSpan.FromSeconds(Math.Min(60, config.Orleans.CollectionAgeSeconds / 2.0));
            });
        });
        builder.Services.AddHostedService<NodeStartup>();
        builder.Services.AddSingleton<NodeHeartbeat>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<NodeHeartbeat>());
        builder.Services.AddHostedService<NodeDrain>();
        // Draining takes up to Cluster:DrainSeconds before processes stop and the silo leaves.
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = TimeSpan.FromSeconds(config.Cluster.DrainSeconds + 60));

        var app = builder.Build();
        app.Services.GetRequiredService<LocalNode>().SetSilo(app.Services.GetRequiredService<Orleans.Runtime.ILocalSiloDetails>().SiloAddress.ToParsableString());
        app.Lifetime.ApplicationStopped.Register(sandboxLogs.Dispose);
        app.Lifetime.ApplicationStarted.Register(() =>
        {
            var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault();
            if (address is not null)
            {
                app.Services.GetRequiredService<ServerUrl>().SetListeningAddress(address.Replace("://0.0.0.0", "://127.0.0.1").Replace("://[::]", "://127.0.0.1"));
            }
        });
        // rsconnect verifies a deploy at "//content/{guid}/" (its base path is dirname("/__api__") = "/"): a run
        // of leading slashes means the root, or the check would never reach the content.
        app.Use((context, next) =>
        {
            var path = context.Request.Path.Value;
            if (path is { Length: > 1 } && path[1] == '/')
            {
                context.Request.Path = new PathString("/" + path.TrimStart('/'));
            }
            return next(context);
        });
        app.UseConnectApiErrors();
        app.UseConnectApiBadInput();
        // Explicit, so that routing sees the normalised path.
        app.UseRouting();
        app.MapGet("/__ping__", () => TypedResults.Json(new { }));
        NodeHealth.Map(app);
        app.MapConnectApi();
        ContentFrontEnd.Map(app);
        LandingPages.Map(app);
        return app;
    }

    /// <summary>Cluster mode: membership, reminders and grain state in PostgreSQL; the silo advertises a routable address.</summary>
    private static void ConfigureCluster(ISiloBuilder silo, ConnectConfiguration config)
    {
        silo.UseConnectPostgres(config.Storage.ConnectionString!);
        silo.Configure<Orleans.Configuration.ClusterOptions>(o =>
        {
            o.ClusterId = config.Orleans.ClusterId;
            o.ServiceId = config.Orleans.ServiceId;
        });
        var advertised = config.Orleans.AdvertisedAddress is { } configured ? System.Net.IPAddress.Parse(configured) : AdvertisedAddress();
        silo.ConfigureEndpoints(advertised, config.Orleans.SiloPort, gatewayPort: 0, listenOnAnyHostAddress: true);
    }

    /// <summary>The host's first non-loopback IPv4 address (loopback when it has none).</summary>
    private static System.Net.IPAddress AdvertisedAddress() =>
        System.Net.NetworkInformation.NetworkInterface.GetAllNetworkInterfaces()
            .Where(n => n.OperationalStatus == System.Net.NetworkInformation.OperationalStatus.Up)
            .SelectMany(n => n.GetIPProperties().UnicastAddresses)
            .Select(a => a.Address)
            .FirstOrDefault(a => a.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork && !System.Net.IPAddress.IsLoopback(a))
        ?? System.Net.IPAddress.Loopback;

    private static void AddServices(IServiceCollection services, ConnectConfiguration config, DataPaths paths, ICatalogStore store)
    {
        services.AddSingleton(TimeProvider.System);
        // Binding failures (?wait=abc) throw with the reason, which UseConnectApiBadInput turns into a JSON 400;
        // otherwise they are a bare 400 whose reason only reaches a debug log.
        services.Configure<Microsoft.AspNetCore.Routing.RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddSingleton(Options.Create(config.Connect));
        services.AddSingleton(Options.Create(config.Scheduler));
        services.AddSingleton(Options.Create(config.Python));
        services.AddSingleton(Options.Create(config.Bootstrap));
        services.AddSingleton(config.Python);
        services.AddSingleton(config.Sandbox);
        services.AddSingleton(paths);
        services.AddSingleton(store);
        services.AddSingleton(Options.Create(config.Cluster));
        services.AddSingleton(sp => new LocalNode(config.NodeName, sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<ClusterNodes>();
        services.AddSingleton(ClusterSecret.Load(config.Cluster.Secret, Path.Combine(paths.Root, "db", "cluster.key")));
        if (config.IsCluster)
        {
            services.AddSingleton(sp => new PostgresChangeFeed(config.Storage.ConnectionString!, sp.GetRequiredService<ContentChanges>(),
                sp.GetRequiredService<ILogger<PostgresChangeFeed>>()));
            services.AddHostedService(sp => sp.GetRequiredService<PostgresChangeFeed>());
        }
        services.AddSingleton(config.Connect.SecretKey is { } key ? new SecretBox(Convert.FromBase64String(key)) : SecretBox.FromKeyFile(paths.SecretKeyFile));
        services.AddSingleton(new ServerUrl(config.Connect.ServerUrl));
        services.AddSingleton<ContentChanges>();
        services.AddSingleton<ApiKeyCache>();
        services.AddSingleton<ApiKeyUsage>();
        services.AddHostedService<ApiKeyUsageFlusher>();
        services.AddSingleton(config.Applications);
        // Only interpreters the run-as user can execute are offered to content (pyenv under /root is not).
        services.AddSingleton(sp => new PythonInstallations(config.Python, sp.GetRequiredService<ILogger<PythonInstallations>>(),
            sp.GetRequiredService<ContentSandbox>().CanExecute));
        services.AddSingleton(sp => new PythonEnvironmentManager(paths.PythonEnvironments, config.Python,
            sp.GetRequiredService<ILogger<PythonEnvironmentManager>>(), sandbox: sp.GetRequiredService<ContentSandbox>()));
        services.AddSingleton<DeploymentPipeline>();
        services.AddSingleton(sp => new ProcessSupervisor(sp.GetRequiredService<TimeProvider>(), sp.GetRequiredService<ILogger<ProcessSupervisor>>()));
        services.AddSingleton<ContentProcessHost>();
        services.AddSingleton<IProcessHost>(sp => sp.GetRequiredService<ContentProcessHost>());
        services.AddSingleton<GrainProcessOwner>();
        services.AddContentFrontEnd();
    }
}
