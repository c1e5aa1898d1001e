using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Connect.Deploy.Tests.Helm;

namespace Connect.Deploy.Tests.Terraform;

/// <summary>deploy/terraform parses and declares the AWS reference architecture (no terraform or AWS here: a static reading).</summary>
public partial class TerraformTests
{
    private static readonly Lazy<TerraformConfig> Lazy = new(() => TerraformConfig.Load(Repository.Path("deploy", "terraform")));

    private static TerraformConfig Config => Lazy.Value;

    private static string Text(JsonNode? node) => node?.GetValueKind() == System.Text.Json.JsonValueKind.String ? node.GetValue<string>() : node?.ToJsonString() ?? "null";

    private static JsonObject Module(string source) =>
        Assert.Single(Config.Modules.Values, m => Text(m["source"]) == source);

    private static (string Name, JsonObject Body) Resource(string type) => Assert.Single(Config.ResourcesOfType(type));

    /// <summary>The resource that a reference such as "${aws_security_group.database.id}" names.</summary>
    private static JsonObject Referenced(string reference, string type)
    {
        var match = Regex.Match(reference, @"^\$\{" + Regex.Escape(type) + @"\.([A-Za-z0-9_]+)\.[a-z_]+\}$");
        Assert.True(match.Success, $"{reference} does not refer to a {type}");
        return Config.Resources[$"{type}.{match.Groups[1].Value}"];
    }

    [Fact]
    public void Every_file_parses()
    {
        Assert.Equal(["database.tf", "eks.tf", "kubernetes.tf", "network.tf", "outputs.tf", "storage.tf", "variables.tf", "versions.tf"], Config.Files.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Registry_modules_are_pinned_to_a_major_version()
    {
        Assert.All(Config.Modules, m => Assert.Matches(@"^~> \d+\.\d+$", Text(m.Value["version"])));
        Assert.All(Config.Files["versions.tf"]["terraform"]![0]!["required_providers"]![0]!.AsObject(),
            p => Assert.Matches(@"^~> \d+\.\d+$", Text(p.Value!["version"])));
    }

    [Fact]
    public void The_vpc_spans_two_zones_with_public_and_private_subnets_and_a_nat_gateway_each()
    {
        var vpc = Module("terraform-aws-modules/vpc/aws");
        Assert.Equal("${local.azs}", Text(vpc["azs"]));
        Assert.Equal("${slice(data.aws_availability_zones.available.names, 0, 2)}", Text(Config.Locals["azs"]));
        Assert.Contains("local.azs", Text(vpc["private_subnets"]), StringComparison.Ordinal);
        Assert.Contains("local.azs", Text(vpc["public_subnets"]), StringComparison.Ordinal);
        Assert.True(vpc["enable_nat_gateway"]!.GetValue<bool>());
        Assert.True(vpc["one_nat_gateway_per_az"]!.GetValue<bool>());
        Assert.False(vpc["single_nat_gateway"]!.GetValue<bool>());
        Assert.Equal("1", Text(vpc["public_subnet_tags"]!["kubernetes.io/role/elb"]));
    }

    [Fact]
    public void Eks_runs_one_managed_node_group_of_two_t3_2xlarge_workers_in_the_private_subnets()
    {
        var eks = Module("terraform-aws-modules/eks/aws");
        Assert.Equal("${module.vpc.private_subnets}", Text(eks["subnet_ids"]));
        var group = Assert.Single(eks["eks_managed_node_groups"]!.AsObject()).Value!;
        var types = group["instance_types"]!.AsArray().Select(t => Text(Config.Resolve(t))).ToList();
        Assert.Equal(["t3.2xlarge"], types);
        Assert.Equal(2, Config.Resolve(group["desired_size"])!.GetValue<int>());
        Assert.Equal(2, Config.Resolve(group["min_size"])!.GetValue<int>());
        // t3 is x86.
        Assert.Equal("AL2023_x86_64_STANDARD", Text(group["ami_type"]));
        Assert.Contains("aws-efs-csi-driver", eks["cluster_addons"]!.AsObject().Select(a => a.Key));
    }

    [Fact]
    public void Rds_is_postgres_15_multi_az_encrypted_private_and_open_to_the_nodes_only()
    {
        var (_, db) = Resource("aws_db_instance");
        Assert.Equal("postgres", Text(db["engine"]));
        Assert.Matches(@"^15(\.\d+)?$", Text(db["engine_version"]));
        Assert.True(db["multi_az"]!.GetValue<bool>());
        Assert.True(db["storage_encrypted"]!.GetValue<bool>());
        Assert.False(db["publicly_accessible"]!.GetValue<bool>());
        Assert.Equal("connect", Text(db["db_name"]));

        var subnets = Referenced(Text(db["db_subnet_group_name"]), "aws_db_subnet_group");
        Assert.Equal("${module.vpc.private_subnets}", Text(subnets["subnet_ids"]));

        var groupReference = Text(Assert.Single(db["vpc_security_group_ids"]!.AsArray()));
        AssertOpenToNodesOnly(groupReference, 5432);
    }

    [Fact]
    public void Efs_is_encrypted_with_a_mount_target_in_every_private_subnet()
    {
        var (fsName, fs) = Resource("aws_efs_file_system");
        Assert.True(fs["encrypted"]!.GetValue<bool>());
        var (_, target) = Resource("aws_efs_mount_target");
        Assert.Equal($"${{aws_efs_file_system.{fsName}.id}}", Text(target["file_system_id"]));
        var forEach = Text(target["for_each"]);
        Assert.Contains("local.azs", forEach, StringComparison.Ordinal);
        Assert.Contains("module.vpc.private_subnets", forEach, StringComparison.Ordinal);
        Assert.Equal("${each.value}", Text(target["subnet_id"]));
        AssertOpenToNodesOnly(Text(Assert.Single(target["security_groups"]!.AsArray())), 2049);
    }

    [Fact]
    public void The_efs_csi_driver_has_its_iam_role_and_a_storage_class()
    {
        var eks = Module("terraform-aws-modules/eks/aws");
        var role = Text(eks["cluster_addons"]!["aws-efs-csi-driver"]!["service_account_role_arn"]);
        var irsa = Config.Modules[Regex.Match(role, @"^\$\{module\.([a-z_]+)\.iam_role_arn\}$").Groups[1].Value];
        Assert.True(irsa["attach_efs_csi_policy"]!.GetValue<bool>());
        Assert.Equal("${module.eks.oidc_provider_arn}", Text(irsa["oidc_providers"]!["main"]!["provider_arn"]));

        var (_, storageClass) = Resource("kubernetes_storage_class_v1");
        Assert.Equal("efs.csi.aws.com", Text(storageClass["storage_provisioner"]));
        var (_, volume) = Resource("kubernetes_persistent_volume_v1");
        var spec = volume["spec"]![0]!;
        Assert.Equal(["ReadWriteMany"], spec["access_modes"]!.AsArray().Select(Text));
        Assert.Equal("efs.csi.aws.com", Text(spec["persistent_volume_source"]![0]!["csi"]![0]!["driver"]));
        Assert.StartsWith("${aws_efs_file_system.", Text(spec["persistent_volume_source"]![0]!["csi"]![0]!["volume_handle"]), StringComparison.Ordinal);
    }

    [Fact]
    public void The_load_balancer_controller_is_installed_with_its_iam_role()
    {
        var (_, release) = Assert.Single(Config.ResourcesOfType("helm_release"), r => Text(r.Body["chart"]) == "aws-load-balancer-controller");
        Assert.Equal("https://aws.github.io/eks-charts", Text(release["repository"]));
        var sets = release["set"]!.AsArray().ToDictionary(s => Text(s!["name"]), s => Text(s!["value"]));
        Assert.Equal("${module.eks.cluster_name}", sets["clusterName"]);
        var account = $"{Text(release["namespace"])}:{sets["serviceAccount.name"]}";

        var role = sets[@"serviceAccount.annotations.eks\.amazonaws\.com/role-arn"];
        var irsa = Config.Modules[Regex.Match(role, @"^\$\{module\.([a-z_]+)\.iam_role_arn\}$").Groups[1].Value];
        Assert.Equal("terraform-aws-modules/iam/aws//modules/iam-role-for-service-accounts-eks", Text(irsa["source"]));
        Assert.True(irsa["attach_load_balancer_controller_policy"]!.GetValue<bool>());
        Assert.Contains(account, irsa["oidc_providers"]!["main"]!["namespace_service_accounts"]!.AsArray().Select(Text));
    }

    [Fact]
    public void The_database_secret_has_the_keys_the_chart_reads()
    {
        var (_, secret) = Resource("kubernetes_secret_v1");
        var data = secret["data"]!.AsObject();
        var manifests = HelmChart.Load(Repository.Path("deploy", "helm", "connect")).Render($"secret:\n  existingSecret: {Text(secret["metadata"]![0]!["name"])}\n");
        var deployment = Assert.Single(manifests, m => m.Kind == "Deployment");
        var references = Y.Maps(Assert.Single(Y.Maps(deployment.Object, "spec.template.spec.containers")), "env")
            .Where(e => Y.Get(e, "valueFrom.secretKeyRef") is not null).ToList();
        Assert.NotEmpty(references);
        foreach (var reference in references)
        {
            Assert.Equal(Text(secret["metadata"]![0]!["name"]), Y.Get(reference, "valueFrom.secretKeyRef.name"));
            Assert.Contains((string)Y.Get(reference, "valueFrom.secretKeyRef.key")!, data.Select(d => d.Key));
        }
        var connection = Text(data["connection-string"]);
        foreach (var part in new[] { "Host=${aws_db_instance.", "Port=${aws_db_instance.", "Database=connect", "Username=connect", "Password=${random_password." })
        {
            Assert.Contains(part, connection, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Connect_is_installed_from_the_chart_with_the_secret_and_the_claim()
    {
        var (_, release) = Assert.Single(Config.ResourcesOfType("helm_release"), r => Text(r.Body["chart"]).EndsWith("/helm/connect", StringComparison.Ordinal));
        Assert.True(Directory.Exists(Repository.Path("deploy", "helm", "connect")));
        var values = Text(Assert.Single(release["values"]!.AsArray()));
        Assert.Contains("existingSecret = kubernetes_secret_v1.", values, StringComparison.Ordinal);
        Assert.Contains("existingClaim = kubernetes_persistent_volume_claim_v1.", values, StringComparison.Ordinal);
        var (_, claim) = Resource("kubernetes_persistent_volume_claim_v1");
        Assert.Equal(["ReadWriteMany"], claim["spec"]![0]!["access_modes"]!.AsArray().Select(Text));
    }

    [Fact]
    public void Every_variable_used_is_declared_and_every_one_declared_is_used()
    {
        var used = Config.Files.Values.SelectMany(f => VariableReference().Matches(f.ToJsonString()).Select(m => m.Groups[1].Value)).ToHashSet(StringComparer.Ordinal);
        Assert.Empty(used.Except(Config.Variables.Keys));
        Assert.Empty(Config.Variables.Keys.Except(used));
        Assert.All(Config.Variables, v => Assert.NotNull(v.Value["description"]));
    }

    [Fact]
    public void Outputs_tell_how_to_reach_what_was_built()
    {
        foreach (var name in new[] { "cluster_name", "database_endpoint", "efs_file_system_id", "ecr_repository_url", "helm_values", "bootstrap_secret_key" })
        {
            Assert.True(Config.Outputs.ContainsKey(name), $"output {name} is missing");
        }
        Assert.True(Config.Outputs["bootstrap_secret_key"]["sensitive"]!.GetValue<bool>());
    }

    /// <summary>A security group with no rules of its own whose only ingress is <paramref name="port"/> from the EKS workers.</summary>
    private static void AssertOpenToNodesOnly(string groupReference, int port)
    {
        var group = Referenced(groupReference, "aws_security_group");
        Assert.Null(group["ingress"]);
        var id = groupReference;
        var rules = Config.ResourcesOfType("aws_vpc_security_group_ingress_rule").Where(r => Text(r.Body["security_group_id"]) == id).ToList();
        var rule = Assert.Single(rules).Body;
        Assert.Equal("${module.eks.node_security_group_id}", Text(rule["referenced_security_group_id"]));
        Assert.Null(rule["cidr_ipv4"]);
        Assert.Equal(port, rule["from_port"]!.GetValue<int>());
        Assert.Equal(port, rule["to_port"]!.GetValue<int>());
        Assert.Empty(Config.ResourcesOfType("aws_security_group_rule"));
    }

    [GeneratedRegex(@"\bvar\.([A-Za-z0-9_]+)")]
    private static partial Regex VariableReference();
}
