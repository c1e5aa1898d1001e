namespace Connect.Deploy.Tests.Helm;

/// <summary>One object a chart renders: the template it came from and the object as plain values.</summary>
public sealed record Manifest(string Template, Dictionary<string, object?> Object)
{
    public string Kind => (string)Object["kind"]!;

    public string Name => Y.Str(Object, "metadata.name");

    public override string ToString() => $"{Kind}/{Name} ({Template})";
}

/// <summary>
/// A Helm chart read from disk and rendered the way <c>helm template</c> would: values.yaml merged with overrides,
/// every template under templates/ except helpers (<c>_*.tpl</c>), each rendered file split into its YAML documents.
/// </summary>
public sealed class HelmChart
{
    private readonly TemplateSet _templates = new();

    private HelmChart(string directory, Dictionary<string, object?> metadata, Dictionary<string, object?> values, List<string> manifests)
    {
        Directory = directory;
        Metadata = metadata;
        Values = values;
        ManifestTemplates = manifests;
    }

    public string Directory { get; }

    /// <summary>Chart.yaml.</summary>
    public Dictionary<string, object?> Metadata { get; }

    /// <summary>values.yaml.</summary>
    public Dictionary<string, object?> Values { get; }

    /// <summary>The templates that render objects (templates/*.yaml), by path relative to the chart.</summary>
    public IReadOnlyList<string> ManifestTemplates { get; }

    public TemplateSet Templates => _templates;

    public static HelmChart Load(string directory)
    {
        var metadata = Y.Map(Yaml.Load(File.ReadAllText(Path.Combine(directory, "Chart.yaml"))), "Chart.yaml");
        var values = Y.Map(Yaml.Load(File.ReadAllText(Path.Combine(directory, "values.yaml"))) ?? new Dictionary<string, object?>(), "values.yaml");
        var manifests = new List<string>();
        var chart = new HelmChart(directory, metadata, values, manifests);
        foreach (var file in System.IO.Directory.EnumerateFiles(Path.Combine(directory, "templates"), "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var relative = Path.GetRelativePath(directory, file);
            var name = Path.GetFileName(file);
            if (name.StartsWith('_') && name.EndsWith(".tpl", StringComparison.Ordinal))
            {
                chart._templates.Add(relative, File.ReadAllText(file));
            }
            else if (name.EndsWith(".yaml", StringComparison.Ordinal))
            {
                chart._templates.Add(relative, File.ReadAllText(file));
                manifests.Add(relative);
            }
            else
            {
                // NOTES.txt, .yml, JSON schemas...: helm would treat them differently; the chart keeps to these two kinds.
                throw new TemplateException($"{relative}: only templates/*.yaml and templates/_*.tpl are supported");
            }
        }
        return chart;
    }

    /// <summary>Every object of the chart rendered with values.yaml and <paramref name="overrides"/> (YAML, as with -f).</summary>
    public List<Manifest> Render(string? overrides = null, string release = "connect", string @namespace = "connect")
    {
        var values = (Dictionary<string, object?>)Clone(Values)!;
        if (overrides is not null)
        {
            Merge(values, Y.Map(Yaml.Load(overrides), "overrides"));
        }
        var root = new StrictMap("")
        {
            ["Values"] = values,
            ["Release"] = new StrictMap("Release") { ["Name"] = release, ["Namespace"] = @namespace, ["Service"] = "Helm" },
            ["Chart"] = new StrictMap("Chart")
            {
                ["Name"] = Metadata["name"],
                ["Version"] = Metadata["version"],
                ["AppVersion"] = Metadata["appVersion"],
            },
        };
        var result = new List<Manifest>();
        foreach (var template in ManifestTemplates)
        {
            var text = _templates.Render(template, root);
            List<object?> documents;
            try
            {
                documents = Yaml.LoadAll(text);
            }
            catch (YamlDotNet.Core.YamlException e)
            {
                throw new TemplateException($"{template} does not render to valid YAML: {e.Message}\n{Numbered(text)}");
            }
            foreach (var document in documents)
            {
                var map = Y.Map(document, template);
                if (map.GetValueOrDefault("apiVersion") is not string || map.GetValueOrDefault("kind") is not string || Y.Get(map, "metadata.name") is not string)
                {
                    throw new TemplateException($"{template} renders an object without apiVersion, kind or metadata.name:\n{Numbered(text)}");
                }
                result.Add(new Manifest(template, map));
            }
        }
        return result;
    }

    private static string Numbered(string text) =>
        string.Join('\n', text.Split('\n').Select((line, i) => $"{i + 1,4} | {line}"));

    private static object? Clone(object? value) => value switch
    {
        IDictionary<string, object?> map => map.ToDictionary(kv => kv.Key, kv => Clone(kv.Value), StringComparer.Ordinal),
        IList<object?> list => list.Select(Clone).ToList(),
        _ => value,
    };

    /// <summary>Helm's merge of a values file over the chart's values: maps merge key by key, anything else replaces.</summary>
    private static void Merge(Dictionary<string, object?> target, Dictionary<string, object?> source)
    {
        foreach (var (key, value) in source)
        {
            if (value is Dictionary<string, object?> nested && target.GetValueOrDefault(key) is Dictionary<string, object?> existing)
            {
                Merge(existing, nested);
            }
            else
            {
                target[key] = Clone(value);
            }
        }
    }
}

/// <summary>Navigation in plain YAML values by dotted paths ("spec.template.spec.containers").</summary>
public static class Y
{
    public static object? Get(object? value, string path)
    {
        foreach (var key in path.Split('.'))
        {
            value = value is IDictionary<string, object?> map && map.TryGetValue(key, out var item) ? item : null;
        }
        return value;
    }

    public static Dictionary<string, object?> Map(object? value, string what) =>
        value as Dictionary<string, object?> ?? throw new InvalidOperationException($"{what} is not a map: {value ?? "null"}");

    public static Dictionary<string, object?> Map(object? value) => Map(value, "value");

    public static List<object?> List(object? value, string path) =>
        Get(value, path) as List<object?> ?? throw new InvalidOperationException($"{path} is not a list");

    public static string Str(object? value, string path) =>
        Get(value, path) switch
        {
            string s => s,
            null => throw new InvalidOperationException($"{path} is missing"),
            var other => Convert.ToString(other, System.Globalization.CultureInfo.InvariantCulture)!,
        };

    public static IEnumerable<Dictionary<string, object?>> Maps(object? value, string path) => List(value, path).Select(v => Map(v, path));
}
