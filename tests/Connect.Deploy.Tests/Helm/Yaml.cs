using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using YamlDotNet.RepresentationModel;

namespace Connect.Deploy.Tests.Helm;

/// <summary>
/// YAML as plain values (maps, lists, strings, longs, doubles, bools, null), typed the way Helm sees them: values
/// files and rendered manifests are read into it, and <c>toYaml</c> writes it back.
/// </summary>
public static partial class Yaml
{
    /// <summary>Every non-empty document of a YAML text.</summary>
    public static List<object?> LoadAll(string text)
    {
        var stream = new YamlStream();
        stream.Load(new StringReader(text));
        return [.. stream.Documents.Select(d => Convert(d.RootNode)).Where(d => d is not null)];
    }

    public static object? Load(string text) => LoadAll(text) switch
    {
        [] => null,
        [var single] => single,
        _ => throw new FormatException("expected one YAML document"),
    };

    private static object? Convert(YamlNode node) => node switch
    {
        YamlMappingNode map => map.Children.ToDictionary(
            kv => ((YamlScalarNode)kv.Key).Value ?? throw new FormatException("null key"),
            kv => Convert(kv.Value),
            StringComparer.Ordinal),
        YamlSequenceNode list => list.Children.Select(Convert).ToList(),
        YamlScalarNode scalar => Scalar(scalar),
        _ => throw new FormatException($"unsupported YAML node {node.NodeType} at {node.Start}"),
    };

    // YAML 1.2 core schema types for plain scalars, as the YAML libraries of Helm and Kubernetes resolve them;
    // quoted scalars are always strings.
    private static object? Scalar(YamlScalarNode scalar)
    {
        var value = scalar.Value ?? "";
        if (scalar.Style is not (YamlDotNet.Core.ScalarStyle.Plain or YamlDotNet.Core.ScalarStyle.Any))
        {
            return value;
        }
        if (value is "" or "~" or "null" or "Null" or "NULL")
        {
            return null;
        }
        if (value is "true" or "True" or "TRUE")
        {
            return true;
        }
        if (value is "false" or "False" or "FALSE")
        {
            return false;
        }
        if (IntPattern().IsMatch(value) && long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var integer))
        {
            return integer;
        }
        if (FloatPattern().IsMatch(value) && double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var number))
        {
            return number;
        }
        return value;
    }

    [GeneratedRegex(@"^[-+]?[0-9]+$")]
    private static partial Regex IntPattern();

    [GeneratedRegex(@"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")]
    private static partial Regex FloatPattern();

    /// <summary>Helm's <c>toYaml</c>: block style, keys sorted, no trailing newline.</summary>
    public static string ToYaml(object? value)
    {
        var lines = new List<string>();
        Emit(value, 0, lines);
        return string.Join('\n', lines);
    }

    private static void Emit(object? value, int indent, List<string> lines)
    {
        var pad = new string(' ', indent);
        switch (value)
        {
            case IDictionary<string, object?> { Count: > 0 } map:
                foreach (var (key, item) in map.OrderBy(kv => kv.Key, StringComparer.Ordinal))
                {
                    switch (item)
                    {
                        case IDictionary<string, object?> { Count: > 0 }:
                            lines.Add($"{pad}{ScalarText(key)}:");
                            Emit(item, indent + 2, lines);
                            break;
                        case IList<object?> { Count: > 0 }:
                            // Lists under a key at the key's own indentation, as Helm's YAML library writes them.
                            lines.Add($"{pad}{ScalarText(key)}:");
                            Emit(item, indent, lines);
                            break;
                        default:
                            lines.Add($"{pad}{ScalarText(key)}: {Inline(item)}");
                            break;
                    }
                }
                break;
            case IList<object?> { Count: > 0 } list:
                foreach (var item in list)
                {
                    if (item is IDictionary<string, object?> { Count: > 0 } or IList<object?> { Count: > 0 })
                    {
                        var nested = new List<string>();
                        Emit(item, indent + 2, nested);
                        nested[0] = pad + "- " + nested[0][(indent + 2)..];
                        lines.AddRange(nested);
                    }
                    else
                    {
                        lines.Add($"{pad}- {Inline(item)}");
                    }
                }
                break;
            default:
                lines.Add(pad + Inline(value));
                break;
        }
    }

    private static string Inline(object? value) => value switch
    {
        null => "null",
        IDictionary<string, object?> => "{}",
        IList<object?> => "[]",
        _ => ScalarText(value),
    };

    /// <summary>A scalar as YAML text: plain where that reads back as the same value, double-quoted otherwise.</summary>
    public static string ScalarText(object? value) => value switch
    {
        null => "null",
        bool b => b ? "true" : "false",
        long or int => System.Convert.ToString(value, CultureInfo.InvariantCulture)!,
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        string s when PlainSafe().IsMatch(s) && Scalar(new YamlScalarNode(s)) is string => s,
        string s => Quote(s),
        _ => throw new ArgumentException($"not a YAML scalar: {value.GetType()}"),
    };

    /// <summary>Go's %q of a string (also the JSON and YAML double-quoted form for the text charts hold).</summary>
    public static string Quote(string s)
    {
        var builder = new StringBuilder("\"");
        foreach (var c in s)
        {
            builder.Append(c switch
            {
                '"' => "\\\"",
                '\\' => "\\\\",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                < ' ' => $"\\x{(int)c:x2}",
                _ => c.ToString(),
            });
        }
        return builder.Append('"').ToString();
    }

    // Letters, digits and a few punctuation marks that never start or mean YAML syntax; "yes"/"on" and friends are
    // quoted too, since YAML 1.1 readers take them for booleans.
    [GeneratedRegex(@"^(?!(?i:y|n|yes|no|on|off)$)(?!.*(: | #))[A-Za-z0-9_/.][A-Za-z0-9_/.:@=+ -]*(?<![ :])$")]
    private static partial Regex PlainSafe();
}
