namespace Connect.Deploy.Tests.Helm;

/// <summary>deploy/helm/connect rendered offline: the objects a cluster needs, wired to each other and to the server's contract.</summary>
public class HelmChartTests
{
    private static readonly string ChartDirectory = Repository.Path("deploy", "helm", "connect");

    // What `helm install --set secret.connectionString=...` gives: the chart's values with the one required value.
    private const string WithDatabase = "secret:\n  connectionString: Host=db;Port=5432;Database=connect;Username=connect;Password=p\n";

    private static HelmChart Chart() => HelmChart.Load(ChartDirectory);

    private static List<Manifest> Render(string overrides = WithDatabase) => Chart().Render(overrides);

    private static Manifest One(List<Manifest> manifests, string kind) => Assert.Single(manifests, m => m.Kind == kind);

    private static Dictionary<string, object?> Container(List<Manifest> manifests) =>
        Assert.Single(Y.Maps(One(manifests, "Deployment").Object, "spec.template.spec.containers"));

    private static Dictionary<string, Dictionary<string, object?>> Env(List<Manifest> manifests) =>
        Y.Maps(Container(manifests), "env").ToDictionary(e => (string)e["name"]!, e => e);

    [Fact]
    public void Every_template_parses_within_the_supported_subset()
    {
        var chart = Chart();
        Assert.NotEmpty(chart.ManifestTemplates);
        Assert.Contains("connect.fullname", chart.Templates.Defines);
    }

    [Fact]
    public void The_chart_renders_the_objects_a_cluster_needs()
    {
        var manifests = Render();
        var kinds = manifests.Select(m => m.Kind).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["Deployment", "Ingress", "PersistentVolumeClaim", "PodDisruptionBudget", "Secret", "Service", "Service"], kinds);
        Assert.Equal(manifests.Count, manifests.Select(m => (m.Kind, m.Name)).Distinct().Count());
        Assert.All(manifests, m => Assert.True(m.Name.Length <= 63, $"{m} has a name longer than 63 characters"));
        Assert.Equal("apps/v1", Y.Get(One(manifests, "Deployment").Object, "apiVersion"));
        Assert.Equal("networking.k8s.io/v1", Y.Get(One(manifests, "Ingress").Object, "apiVersion"));
        Assert.Equal("policy/v1", Y.Get(One(manifests, "PodDisruptionBudget").Object, "apiVersion"));
    }

    [Fact]
    public void Rendering_without_a_database_fails_and_says_what_is_missing()
    {
        var e = Assert.Throws<TemplateException>(() => Chart().Render());
        Assert.Contains("secret.connectionString", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Every_value_a_template_reads_is_declared_in_values_yaml()
    {
        var chart = Chart();
        foreach (var path in chart.Templates.ValuePaths)
        {
            object? node = chart.Values;
            foreach (var key in path.Split('.'))
            {
                var map = Assert.IsType<Dictionary<string, object?>>(node);
                Assert.True(map.ContainsKey(key), $".Values.{path} is read by a template but not declared in values.yaml");
                node = map[key];
            }
        }
    }

    [Fact]
    public void The_environment_follows_the_cluster_configuration_contract()
    {
        var manifests = Render();
        var env = Env(manifests);
        var unknown = env.Keys.Where(name => name != "POD_IP" && !ConfigContract.Known(name)).ToList();
        Assert.True(unknown.Count == 0, $"environment variables outside the contract: {string.Join(", ", unknown)}");
        Assert.Empty(ConfigContract.Required.Except(env.Keys));

        Assert.Equal("postgres", env["Storage__Provider"]["value"]);
        Assert.Equal("status.podIP", Y.Get(env["Orleans__AdvertisedAddress"], "valueFrom.fieldRef.fieldPath"));
        Assert.Equal("status.podIP", Y.Get(env["POD_IP"], "valueFrom.fieldRef.fieldPath"));
        Assert.Equal("metadata.name", Y.Get(env["Cluster__NodeName"], "valueFrom.fieldRef.fieldPath"));

        // $(POD_IP) expands only if POD_IP comes earlier in the list.
        var names = env.Keys.ToList();
        Assert.True(names.IndexOf("POD_IP") < names.IndexOf("Cluster__InternalUrl"));
        var httpPort = Y.Maps(Container(manifests), "ports").Single(p => (string)p["name"]! == "http")["containerPort"];
        var siloPort = Y.Maps(Container(manifests), "ports").Single(p => (string)p["name"]! == "silo")["containerPort"];
        Assert.Equal($"http://$(POD_IP):{httpPort}", env["Cluster__InternalUrl"]["value"]);
        Assert.Equal($"http://0.0.0.0:{httpPort}", env["ASPNETCORE_URLS"]["value"]);
        Assert.Equal(siloPort?.ToString(), env["Orleans__SiloPort"]["value"]);

        // Values are strings, as Kubernetes requires.
        Assert.All(env.Values.Where(e => e.ContainsKey("value")), e => Assert.IsType<string>(e["value"]));
    }

    [Fact]
    public void Secrets_come_from_the_secret_the_chart_creates()
    {
        var manifests = Render(WithDatabase + "  clusterSecret: c2VjcmV0\n  bootstrapSecretKey: Ym9vdA==\n");
        var secret = One(manifests, "Secret");
        var env = Env(manifests);
        foreach (var name in new[] { "Storage__ConnectionString", "Cluster__Secret", "CONNECT_BOOTSTRAP_SECRETKEY" })
        {
            Assert.Equal(secret.Name, Y.Get(env[name], "valueFrom.secretKeyRef.name"));
            var key = Y.Str(env[name], "valueFrom.secretKeyRef.key");
            Assert.True(Y.Get(secret.Object, "stringData." + key) is string { Length: > 0 }, $"the Secret lacks {key}");
        }
        Assert.Equal("Host=db;Port=5432;Database=connect;Username=connect;Password=p", Y.Get(secret.Object, "stringData.connection-string"));
        // The optional ones stay optional: without them the Secret has no such key and the pod still starts.
        Assert.Equal(true, Y.Get(Env(Render())["Cluster__Secret"], "valueFrom.secretKeyRef.optional"));
        Assert.Null(Y.Get(One(Render(), "Secret").Object, "stringData.cluster-secret"));
    }

    [Fact]
    public void An_existing_secret_and_claim_replace_the_charts_own()
    {
        var manifests = Render("secret:\n  existingSecret: connect-database\npersistence:\n  existingClaim: shared\ningress:\n  enabled: false\npodDisruptionBudget:\n  enabled: false\n");
        Assert.DoesNotContain(manifests, m => m.Kind is "Secret" or "PersistentVolumeClaim" or "Ingress" or "PodDisruptionBudget");
        Assert.Equal("connect-database", Y.Get(Env(manifests)["Storage__ConnectionString"], "valueFrom.secretKeyRef.name"));
        var volume = Y.Maps(One(manifests, "Deployment").Object, "spec.template.spec.volumes").Single(v => (string)v["name"]! == "data");
        Assert.Equal("shared", Y.Get(volume, "persistentVolumeClaim.claimName"));
    }

    [Fact]
    public void Probes_use_the_servers_health_endpoints()
    {
        var container = Container(Render());
        Assert.Equal(ConfigContract.LivePath, Y.Get(container, "livenessProbe.httpGet.path"));
        Assert.Equal(ConfigContract.ReadyPath, Y.Get(container, "readinessProbe.httpGet.path"));
        Assert.Equal("http", Y.Get(container, "livenessProbe.httpGet.port"));
        Assert.Equal("http", Y.Get(container, "readinessProbe.httpGet.port"));
    }

    [Fact]
    public void The_grace_period_outlasts_the_drain()
    {
        var manifests = Render();
        var grace = (long)Y.Get(One(manifests, "Deployment").Object, "spec.template.spec.terminationGracePeriodSeconds")!;
        var drain = long.Parse((string)Env(manifests)["Cluster__DrainSeconds"]["value"]!, System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(grace > drain, $"terminationGracePeriodSeconds {grace} must exceed Cluster__DrainSeconds {drain}");
        // The ALB stops sending to a deregistered pod within its deregistration delay, which must end inside the drain.
        var attributes = Annotations(One(manifests, "Ingress"))["alb.ingress.kubernetes.io/target-group-attributes"]!.ToString()!;
        var delay = attributes.Split(',').Select(a => a.Split('=')).Single(a => a[0] == "deregistration_delay.timeout_seconds")[1];
        Assert.True(long.Parse(delay, System.Globalization.CultureInfo.InvariantCulture) < drain, $"deregistration delay {delay} must be below the drain {drain}");
    }

    private static Dictionary<string, object?> Annotations(Manifest manifest) => Y.Map(Y.Get(manifest.Object, "metadata.annotations"));

    [Fact]
    public void The_ingress_is_an_alb_without_stickiness_that_checks_readiness()
    {
        var manifests = Render();
        var ingress = One(manifests, "Ingress");
        var annotations = Annotations(ingress);
        Assert.Equal("alb", Y.Get(ingress.Object, "spec.ingressClassName"));
        Assert.Equal("ip", annotations["alb.ingress.kubernetes.io/target-type"]);
        Assert.Equal(ConfigContract.ReadyPath, annotations["alb.ingress.kubernetes.io/healthcheck-path"]);
        Assert.Equal("200", annotations["alb.ingress.kubernetes.io/success-codes"]);
        var attributes = ((string)annotations["alb.ingress.kubernetes.io/target-group-attributes"]!).Split(',');
        Assert.Contains("stickiness.enabled=false", attributes);
        Assert.Contains("idle_timeout.timeout_seconds=3600", ((string)annotations["alb.ingress.kubernetes.io/load-balancer-attributes"]!).Split(','));
        Assert.All(annotations.Values, v => Assert.IsType<string>(v));

        var backend = Y.Map(Y.Get(Assert.Single(Y.Maps(Assert.Single(Y.Maps(ingress.Object, "spec.rules")), "http.paths")), "backend.service"));
        var service = Assert.Single(manifests, m => m.Kind == "Service" && Y.Get(m.Object, "spec.clusterIP") is not "None");
        Assert.Equal(service.Name, backend["name"]);
        Assert.Equal("http", Y.Get(backend, "port.name"));
        Assert.Contains(Y.Maps(service.Object, "spec.ports"), p => (string)p["name"]! == "http" && (string)p["targetPort"]! == "http");
    }

    [Fact]
    public void Tls_adds_the_certificate_and_an_https_listener()
    {
        var annotations = Annotations(One(Render(WithDatabase + "ingress:\n  certificateArn: arn:aws:acm:eu-west-1:1:certificate/x\n  host: connect.example.com\n"), "Ingress"));
        Assert.Equal("arn:aws:acm:eu-west-1:1:certificate/x", annotations["alb.ingress.kubernetes.io/certificate-arn"]);
        Assert.Contains("HTTPS", (string)annotations["alb.ingress.kubernetes.io/listen-ports"]!, StringComparison.Ordinal);
        Assert.DoesNotContain("HTTPS", (string)Annotations(One(Render(), "Ingress"))["alb.ingress.kubernetes.io/listen-ports"]!, StringComparison.Ordinal);
    }

    [Fact]
    public void The_shared_data_directory_is_a_read_write_many_claim()
    {
        var manifests = Render();
        var claim = One(manifests, "PersistentVolumeClaim");
        Assert.Equal(["ReadWriteMany"], Y.List(claim.Object, "spec.accessModes"));
        var pod = Y.Map(Y.Get(One(manifests, "Deployment").Object, "spec.template.spec"));
        var data = Y.Maps(pod, "volumes").Single(v => Equals(Y.Get(v, "persistentVolumeClaim.claimName"), claim.Name));
        var scratch = Y.Maps(pod, "volumes").Single(v => v.ContainsKey("emptyDir"));
        var mounts = Y.Maps(Container(manifests), "volumeMounts").ToDictionary(m => (string)m["name"]!, m => (string)m["mountPath"]!);
        var env = Env(manifests);
        Assert.Equal(env["Connect__DataDir"]["value"], mounts[(string)data["name"]!]);
        Assert.Equal(env["Cluster__ScratchDir"]["value"], mounts[(string)scratch["name"]!]);
    }

    [Fact]
    public void Nodes_roll_one_at_a_time_and_spread_over_zones()
    {
        var manifests = Render();
        var deployment = One(manifests, "Deployment").Object;
        Assert.Equal(2L, Y.Get(deployment, "spec.replicas"));
        Assert.Equal(0L, Y.Get(deployment, "spec.strategy.rollingUpdate.maxUnavailable"));
        Assert.Contains(Y.Maps(deployment, "spec.template.spec.topologySpreadConstraints"), c => (string)c["topologyKey"]! == "topology.kubernetes.io/zone");
        Assert.Equal(1L, Y.Get(One(manifests, "PodDisruptionBudget").Object, "spec.maxUnavailable"));
        Assert.Equal(false, Y.Get(deployment, "spec.template.spec.enableServiceLinks"));
    }

    [Fact]
    public void Extra_environment_and_scheduling_values_reach_the_pod()
    {
        var manifests = Render(WithDatabase + "extraEnv:\n- name: Python__PackageIndex\n  value: https://pypi.example.com/simple\nnodeSelector:\n  pool: connect\nserverUrl: https://connect.example.com\n");
        var env = Env(manifests);
        Assert.Equal("https://pypi.example.com/simple", env["Python__PackageIndex"]["value"]);
        Assert.Equal("https://connect.example.com", env["Connect__ServerUrl"]["value"]);
        Assert.Equal("connect", Y.Get(One(manifests, "Deployment").Object, "spec.template.spec.nodeSelector.pool"));
    }

    [Fact]
    public void The_headless_service_carries_silo_traffic_for_every_pod()
    {
        var manifests = Render();
        var services = manifests.Where(m => m.Kind == "Service").ToList();
        var headless = Assert.Single(services, s => Y.Get(s.Object, "spec.clusterIP") is "None");
        Assert.Equal(true, Y.Get(headless.Object, "spec.publishNotReadyAddresses"));
        var ports = Y.Maps(headless.Object, "spec.ports").ToList();
        Assert.Contains(ports, p => (string)p["targetPort"]! == "silo" && Equals(p["port"], long.Parse((string)Env(manifests)["Orleans__SiloPort"]["value"]!, System.Globalization.CultureInfo.InvariantCulture)));

        var podLabels = Y.Map(Y.Get(One(manifests, "Deployment").Object, "spec.template.metadata.labels"));
        foreach (var selector in services.Select(s => Y.Map(Y.Get(s.Object, "spec.selector"))))
        {
            Assert.All(selector, kv => Assert.Equal(kv.Value, podLabels.GetValueOrDefault(kv.Key)));
        }
        Assert.Equivalent(Y.Get(One(manifests, "Deployment").Object, "spec.selector.matchLabels"), Y.Get(One(manifests, "PodDisruptionBudget").Object, "spec.selector.matchLabels"), strict: true);
    }
}
