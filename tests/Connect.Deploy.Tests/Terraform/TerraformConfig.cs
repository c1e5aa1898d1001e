using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;

namespace Connect.Deploy.Tests.Terraform;

/// <summary>
/// A Terraform configuration (every *.tf of a directory) parsed offline: there is no terraform here, so the npm
/// package hcl2-parser turns HCL2 into JSON. Expressions stay text ("${module.vpc.private_subnets}"); literals are
/// JSON values; blocks are lists of objects.
/// </summary>
public sealed class TerraformConfig
{
    private TerraformConfig()
    {
    }

    /// <summary>Resources by "type.name".</summary>
    public Dictionary<string, JsonObject> Resources { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, JsonObject> Modules { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, JsonObject> Variables { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, JsonObject> Outputs { get; } = new(StringComparer.Ordinal);

    public Dictionary<string, JsonNode?> Locals { get; } = new(StringComparer.Ordinal);

    /// <summary>The parsed JSON of every file, by file name.</summary>
    public Dictionary<string, JsonObject> Files { get; } = new(StringComparer.Ordinal);

    public IEnumerable<(string Name, JsonObject Body)> ResourcesOfType(string type) =>
        Resources.Where(r => r.Key.StartsWith(type + ".", StringComparison.Ordinal)).Select(r => (r.Key[(type.Length + 1)..], r.Value));

    /// <summary>A variable reference ("${var.x}") as the variable's default; anything else as it is.</summary>
    public JsonNode? Resolve(JsonNode? value)
    {
        if (value is JsonValue v && v.TryGetValue<string>(out var text) && text.StartsWith("${var.", StringComparison.Ordinal) && text.EndsWith('}')
            && text[6..^1].All(c => char.IsLetterOrDigit(c) || c == '_'))
        {
            var name = text[6..^1];
            return Variables.TryGetValue(name, out var variable)
                ? variable["default"]
                : throw new InvalidOperationException($"var.{name} is not declared");
        }
        return value;
    }

    public static TerraformConfig Load(string directory)
    {
        var files = Directory.EnumerateFiles(directory, "*.tf").Order(StringComparer.Ordinal).ToList();
        var parsed = HclParser.Parse(files);
        var config = new TerraformConfig();
        foreach (var file in files)
        {
            var root = parsed[file]!.AsObject();
            config.Files[Path.GetFileName(file)] = root;
            foreach (var (kind, blocks) in root)
            {
                switch (kind)
                {
                    case "resource":
                        foreach (var (type, named) in blocks!.AsObject())
                        {
                            foreach (var (name, body) in named!.AsObject())
                            {
                                Add(config.Resources, $"{type}.{name}", body, file);
                            }
                        }
                        break;
                    case "module":
                        AddNamed(config.Modules, blocks, file);
                        break;
                    case "variable":
                        AddNamed(config.Variables, blocks, file);
                        break;
                    case "output":
                        AddNamed(config.Outputs, blocks, file);
                        break;
                    case "locals":
                        foreach (var block in blocks!.AsArray())
                        {
                            foreach (var (name, value) in block!.AsObject())
                            {
                                config.Locals[name] = value?.DeepClone();
                            }
                        }
                        break;
                }
            }
        }
        return config;
    }

    private static void AddNamed(Dictionary<string, JsonObject> target, JsonNode? blocks, string file)
    {
        foreach (var (name, body) in blocks!.AsObject())
        {
            Add(target, name, body, file);
        }
    }

    private static void Add(Dictionary<string, JsonObject> target, string key, JsonNode? body, string file)
    {
        // A labelled block appears once per file as a one-element list; twice would be a Terraform error.
        var block = Assert.Single(body!.AsArray())!.AsObject();
        Assert.True(target.TryAdd(key, block), $"{key} is declared twice ({Path.GetFileName(file)})");
    }
}

/// <summary>Runs tests/Connect.Deploy.Tests/hcl/parse.js with its npm dependency, installed once per version into a temp directory.</summary>
public static class HclParser
{
    private static readonly Lazy<string> ToolDirectory = new(Install);

    private static readonly string[] ToolFiles = ["package.json", "package-lock.json", "parse.js"];

    public static JsonObject Parse(IReadOnlyList<string> files)
    {
        var node = Repository.Which("node") ?? throw new InvalidOperationException("node is not on PATH: the Terraform checks parse HCL with Node.js (tests/run.sh installs nodejs)");
        var (code, stdout, stderr) = Repository.Run(node, [Path.Combine(ToolDirectory.Value, "parse.js"), .. files]);
        Assert.True(code == 0, $"HCL does not parse: {stderr}");
        return JsonNode.Parse(stdout)!.AsObject();
    }

    private static string Install()
    {
        var source = Repository.Path("tests", "Connect.Deploy.Tests", "hcl");
        var hash = Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(string.Concat(ToolFiles.Select(f => File.ReadAllText(Path.Combine(source, f)))))))[..16];
        var target = Path.Combine(Path.GetTempPath(), "connect-deploy-hcl-" + hash.ToLowerInvariant());
        if (File.Exists(Path.Combine(target, "node_modules", "hcl2-parser", "package.json")))
        {
            return target;
        }
        var npm = Repository.Which("npm") ?? throw new InvalidOperationException("npm is not on PATH: the Terraform checks install hcl2-parser with it (tests/run.sh installs nodejs)");
        // Installed beside the target and moved into place whole, so that concurrent test runs never see half an install.
        var staging = target + ".tmp-" + Environment.ProcessId;
        Directory.CreateDirectory(staging);
        try
        {
            foreach (var file in ToolFiles)
            {
                File.Copy(Path.Combine(source, file), Path.Combine(staging, file), overwrite: true);
            }
            var (code, stdout, stderr) = Repository.Run(npm, ["ci", "--no-audit", "--no-fund", "--ignore-scripts"], staging);
            Assert.True(code == 0, $"npm ci of the HCL parser failed: {stdout}{stderr}");
            try
            {
                Directory.Move(staging, target);
            }
            catch (IOException) when (Directory.Exists(target))
            {
                // Another run finished first; its copy is the same.
            }
        }
        finally
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
        return target;
    }
}
