using System.Globalization;
using System.Text;

namespace Connect.Deploy.Tests.Helm;

/// <summary>A template that cannot be parsed or rendered, or that steps outside the supported subset.</summary>
public sealed class TemplateException(string message) : Exception(message);

/// <summary>
/// A map that refuses unknown keys: Helm's built-in objects (<c>.Release</c>, <c>.Chart</c>), where a misspelt field
/// must fail rather than print nothing.
/// </summary>
public sealed class StrictMap(string name) : Dictionary<string, object?>(StringComparer.Ordinal)
{
    public string Name { get; } = name;
}

/// <summary>
/// The part of Go's text/template, with Helm's functions, that deploy/helm uses, so that the chart renders offline
/// (no helm here) into what Kubernetes would get. Text, <c>{{- -}}</c> trimming, comments, fields of <c>.</c> and
/// <c>$</c>, string/number/bool literals, pipelines, <c>if</c>/<c>else if</c>/<c>else</c>, <c>with</c>,
/// <c>range</c>, <c>define</c>, and the functions in <see cref="Functions"/>. Anything else — another function,
/// variables, parentheses, <c>template</c>/<c>block</c>, other built-in objects — fails at parse time with the
/// file and line, also in branches the values never take, so the chart cannot outgrow what its tests check.
/// </summary>
public sealed class TemplateSet
{
    public static readonly IReadOnlySet<string> Functions = new HashSet<string>(StringComparer.Ordinal)
    {
        "include", "quote", "default", "toYaml", "nindent", "indent", "trunc", "trimSuffix", "required", "not",
    };

    /// <summary>Helm's built-in objects the chart may read, with the fields it may read (null: any).</summary>
    public static readonly IReadOnlyDictionary<string, IReadOnlySet<string>?> BuiltIns = new Dictionary<string, IReadOnlySet<string>?>
    {
        ["Values"] = null,
        ["Release"] = new HashSet<string> { "Name", "Namespace", "Service" },
        ["Chart"] = new HashSet<string> { "Name", "Version", "AppVersion" },
    };

    private readonly Dictionary<string, List<Node>> _defines = new(StringComparer.Ordinal);
    private readonly Dictionary<string, List<Node>> _files = new(StringComparer.Ordinal);
    private readonly SortedSet<string> _valuePaths = new(StringComparer.Ordinal);

    /// <summary>Every <c>.Values.a.b</c> path the templates read, as "a.b".</summary>
    public IReadOnlyCollection<string> ValuePaths => _valuePaths;

    public IReadOnlyCollection<string> Defines => _defines.Keys;

    public void Add(string name, string text)
    {
        var parser = new Parser(name, Lex(name, text), this);
        _files[name] = parser.ParseFile();
    }

    public string Render(string name, object? data)
    {
        if (!_files.TryGetValue(name, out var nodes))
        {
            throw new TemplateException($"no template {name}");
        }
        var output = new StringBuilder();
        Execute(nodes, new Scope(data, data), output);
        return output.ToString();
    }

    // --- lexing -------------------------------------------------------------------------------------------------

    private sealed record Token(bool IsAction, string Text, int Line);

    private static bool IsSpace(char c) => c is ' ' or '\t' or '\r' or '\n';

    private static readonly char[] Spaces = [' ', '\t', '\r', '\n'];

    private static List<Token> Lex(string file, string text)
    {
        var tokens = new List<Token>();
        var pos = 0;
        var line = 1;
        var trimNext = false;
        while (true)
        {
            var open = text.IndexOf("{{", pos, StringComparison.Ordinal);
            var literal = open < 0 ? text[pos..] : text[pos..open];
            if (trimNext)
            {
                literal = literal.TrimStart(Spaces);
            }
            if (open < 0)
            {
                AddText(literal);
                return tokens;
            }
            var actionLine = line + text.AsSpan(pos, open - pos).Count('\n');
            var start = open + 2;
            var trimBefore = start + 1 < text.Length && text[start] == '-' && IsSpace(text[start + 1]);
            if (trimBefore)
            {
                literal = literal.TrimEnd(Spaces);
                start++;
            }
            AddText(literal);
            var close = FindClose(file, text, start, actionLine);
            var end = close;
            var trimAfter = close - 2 >= start && text[close - 1] == '-' && IsSpace(text[close - 2]);
            if (trimAfter)
            {
                end--;
            }
            var body = text[start..end].Trim(Spaces);
            if (body.StartsWith("/*", StringComparison.Ordinal))
            {
                if (!body.EndsWith("*/", StringComparison.Ordinal))
                {
                    throw new TemplateException($"{file}:{actionLine}: a comment must end with */ right before }}}}");
                }
            }
            else
            {
                tokens.Add(new Token(true, body, actionLine));
            }
            trimNext = trimAfter;
            line = actionLine + text.AsSpan(open, close + 2 - open).Count('\n');
            pos = close + 2;
        }

        void AddText(string literal)
        {
            if (literal.Length > 0)
            {
                tokens.Add(new Token(false, literal, line));
            }
        }
    }

    private static int FindClose(string file, string text, int start, int line)
    {
        char quote = '\0';
        for (var i = start; i < text.Length; i++)
        {
            var c = text[i];
            if (quote != '\0')
            {
                if (c == '\\' && quote == '"')
                {
                    i++;
                }
                else if (c == quote)
                {
                    quote = '\0';
                }
            }
            else if (c is '"' or '`')
            {
                quote = c;
            }
            else if (c == '}' && i + 1 < text.Length && text[i + 1] == '}')
            {
                return i;
            }
        }
        throw new TemplateException($"{file}:{line}: unclosed action");
    }

    // --- syntax -------------------------------------------------------------------------------------------------

    private abstract record Node(int Line);
    private sealed record TextNode(string Text, int Line) : Node(Line);
    private sealed record OutputNode(Pipeline Pipeline, int Line) : Node(Line);
    private sealed record BlockNode(string Kind, Pipeline Pipeline, List<Node> Then, List<Node>? Else, int Line) : Node(Line);

    private sealed record Pipeline(List<Command> Commands, string File, int Line);

    /// <summary>A function call (Function set) or a single value (Function null).</summary>
    private sealed record Command(string? Function, List<Operand> Operands);

    private abstract record Operand;
    private sealed record Literal(object? Value) : Operand;
    /// <summary>A field chain from <c>.</c> (FromRoot false) or <c>$</c> (FromRoot true); no segments is the value itself.</summary>
    private sealed record Field(bool FromRoot, string[] Path) : Operand;

    private enum WordKind { Pipe, String, Number, Bool, Identifier, Field }

    private sealed record Word(WordKind Kind, string Text, object? Value = null);

    private sealed class Parser(string file, List<Token> tokens, TemplateSet set)
    {
        private int _next;

        public List<Node> ParseFile()
        {
            var nodes = ParseList(inBlock: false, topLevel: true, out _);
            return nodes;
        }

        private TemplateException Error(int line, string message) => new($"{file}:{line}: {message}");

        /// <summary>Nodes up to the "else" or "end" that closes the enclosing block (returned in <paramref name="stop"/>).</summary>
        private List<Node> ParseList(bool inBlock, bool topLevel, out Token? stop)
        {
            var nodes = new List<Node>();
            while (_next < tokens.Count)
            {
                var token = tokens[_next++];
                if (!token.IsAction)
                {
                    nodes.Add(new TextNode(token.Text, token.Line));
                    continue;
                }
                var words = Words(token);
                if (words.Count == 0)
                {
                    throw Error(token.Line, "empty action");
                }
                var keyword = words[0].Kind == WordKind.Identifier ? words[0].Text : null;
                switch (keyword)
                {
                    case "end" or "else":
                        if (!inBlock)
                        {
                            throw Error(token.Line, $"{keyword} without a block");
                        }
                        if (keyword == "end" && words.Count > 1)
                        {
                            throw Error(token.Line, "end takes nothing");
                        }
                        stop = token;
                        return nodes;
                    case "if" or "with" or "range":
                        nodes.Add(ParseBlock(keyword, words.Skip(1).ToList(), token));
                        break;
                    case "define":
                        if (!topLevel)
                        {
                            throw Error(token.Line, "define must be at the top level");
                        }
                        if (words is not [_, { Kind: WordKind.String, Value: string name }])
                        {
                            throw Error(token.Line, "define takes one string: the template's name");
                        }
                        var body = ParseList(inBlock: true, topLevel: false, out var end);
                        if (end is null || Words(end)[0].Text != "end")
                        {
                            throw Error(token.Line, $"define \"{name}\" must close with end, not else");
                        }
                        if (!set._defines.TryAdd(name, body))
                        {
                            throw Error(token.Line, $"template \"{name}\" is defined twice");
                        }
                        break;
                    case "template" or "block" or "break" or "continue":
                        throw Error(token.Line, $"'{keyword}' is outside the supported subset (use include)");
                    default:
                        nodes.Add(new OutputNode(ParsePipeline(words, token), token.Line));
                        break;
                }
            }
            if (inBlock)
            {
                throw Error(tokens.Count > 0 ? tokens[^1].Line : 1, "a block is missing its end");
            }
            stop = null;
            return nodes;
        }

        private BlockNode ParseBlock(string kind, List<Word> condition, Token token)
        {
            if (condition.Count == 0)
            {
                throw Error(token.Line, $"{kind} needs a pipeline");
            }
            var pipeline = ParsePipeline(condition, token);
            var then = ParseList(inBlock: true, topLevel: false, out var stop);
            var stopWords = Words(stop!);
            if (stopWords[0].Text == "end")
            {
                return new BlockNode(kind, pipeline, then, null, token.Line);
            }
            if (stopWords.Count == 1)
            {
                var otherwise = ParseList(inBlock: true, topLevel: false, out var end);
                if (Words(end!)[0].Text != "end")
                {
                    throw Error(end!.Line, "a second else in one block");
                }
                return new BlockNode(kind, pipeline, then, otherwise, token.Line);
            }
            if (kind == "if" && stopWords[1] is { Kind: WordKind.Identifier, Text: "if" })
            {
                // "else if" is an if nested in the else branch that shares the outer block's end.
                var nested = ParseBlock("if", stopWords.Skip(2).ToList(), stop!);
                return new BlockNode(kind, pipeline, then, [nested], token.Line);
            }
            throw Error(stop!.Line, "only a plain else or else if is supported");
        }

        private Pipeline ParsePipeline(List<Word> words, Token token)
        {
            var commands = new List<Command>();
            var current = new List<Word>();
            foreach (var word in words.Append(new Word(WordKind.Pipe, "|")))
            {
                if (word.Kind != WordKind.Pipe)
                {
                    current.Add(word);
                    continue;
                }
                if (current.Count == 0)
                {
                    throw Error(token.Line, "empty command in a pipeline");
                }
                if (current[0].Kind == WordKind.Identifier)
                {
                    var function = current[0].Text;
                    if (!Functions.Contains(function))
                    {
                        throw Error(token.Line, $"function '{function}' is outside the supported subset ({string.Join(", ", Functions)})");
                    }
                    commands.Add(new Command(function, current.Skip(1).Select(w => Operand(w, token)).ToList()));
                }
                else
                {
                    var operand = Operand(current[0], token);
                    if (current.Count > 1 || commands.Count > 0)
                    {
                        throw Error(token.Line, $"'{current[0].Text}' is not a function: it takes no arguments");
                    }
                    commands.Add(new Command(null, [operand]));
                }
                current.Clear();
            }
            return new Pipeline(commands, file, token.Line);
        }

        private Operand Operand(Word word, Token token) => word.Kind switch
        {
            WordKind.String or WordKind.Number or WordKind.Bool => new Literal(word.Value),
            WordKind.Field => FieldOperand(word.Text, token),
            _ => throw Error(token.Line, $"'{word.Text}' as an argument: a function without parentheses is outside the supported subset"),
        };

        private Field FieldOperand(string text, Token token)
        {
            var fromRoot = text.StartsWith('$');
            var chain = fromRoot ? text[1..] : text;
            var path = chain is "" or "." ? [] : chain[1..].Split('.');
            if (path.Any(p => p.Length == 0 || !(char.IsLetter(p[0]) || p[0] == '_') || !p.All(c => char.IsLetterOrDigit(c) || c == '_')))
            {
                throw Error(token.Line, $"'{text}' is not a field chain");
            }
            // Built-in objects are capitalised; values by convention are not. Only the ones listed are supported.
            if (path.Length > 0 && char.IsUpper(path[0][0]))
            {
                if (!BuiltIns.TryGetValue(path[0], out var fields))
                {
                    throw Error(token.Line, $"built-in object .{path[0]} is outside the supported subset (.Values, .Release, .Chart)");
                }
                if (fields is not null && (path.Length != 2 || !fields.Contains(path[1])))
                {
                    throw Error(token.Line, $"'{text}': .{path[0]} supports {string.Join(", ", fields.Select(f => "." + f))}");
                }
                if (path[0] == "Values" && path.Length > 1)
                {
                    set._valuePaths.Add(string.Join('.', path[1..]));
                }
            }
            return new Field(fromRoot, path);
        }

        private List<Word> Words(Token token)
        {
            var words = new List<Word>();
            var body = token.Text;
            var i = 0;
            while (i < body.Length)
            {
                var c = body[i];
                if (IsSpace(c))
                {
                    i++;
                }
                else if (c == '|')
                {
                    words.Add(new Word(WordKind.Pipe, "|"));
                    i++;
                }
                else if (c == '"')
                {
                    var value = new StringBuilder();
                    i++;
                    while (true)
                    {
                        if (i >= body.Length)
                        {
                            throw Error(token.Line, "unterminated string");
                        }
                        var s = body[i++];
                        if (s == '"')
                        {
                            break;
                        }
                        if (s == '\\')
                        {
                            var e = i < body.Length ? body[i++] : throw Error(token.Line, "unterminated string");
                            value.Append(e switch
                            {
                                'n' => '\n',
                                't' => '\t',
                                '"' => '"',
                                '\\' => '\\',
                                _ => throw Error(token.Line, $"escape \\{e} is outside the supported subset"),
                            });
                        }
                        else
                        {
                            value.Append(s);
                        }
                    }
                    words.Add(new Word(WordKind.String, value.ToString(), value.ToString()));
                }
                else if (c == '`')
                {
                    var close = body.IndexOf('`', i + 1);
                    if (close < 0)
                    {
                        throw Error(token.Line, "unterminated raw string");
                    }
                    var value = body[(i + 1)..close];
                    words.Add(new Word(WordKind.String, value, value));
                    i = close + 1;
                }
                else if (c is '(' or ')')
                {
                    throw Error(token.Line, "parenthesised pipelines are outside the supported subset");
                }
                else
                {
                    var start = i;
                    while (i < body.Length && !IsSpace(body[i]) && body[i] is not ('|' or '(' or ')' or '"'))
                    {
                        i++;
                    }
                    words.Add(Classify(body[start..i], token));
                }
            }
            return words;
        }

        private Word Classify(string text, Token token)
        {
            if (text.StartsWith('.') || text == "$" || text.StartsWith("$.", StringComparison.Ordinal))
            {
                return new Word(WordKind.Field, text);
            }
            if (text.StartsWith('$') || text is ":=" or "=")
            {
                throw Error(token.Line, $"variables ('{text}') are outside the supported subset");
            }
            if (text is "true" or "false")
            {
                return new Word(WordKind.Bool, text, text == "true");
            }
            if (long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var number))
            {
                return new Word(WordKind.Number, text, number);
            }
            if ((char.IsLetter(text[0]) || text[0] == '_') && text.All(c => char.IsLetterOrDigit(c) || c == '_'))
            {
                return new Word(WordKind.Identifier, text);
            }
            throw Error(token.Line, $"'{text}' is outside the supported subset");
        }
    }

    // --- execution ----------------------------------------------------------------------------------------------

    /// <summary><c>.</c> and <c>$</c> where a node runs.</summary>
    private sealed record Scope(object? Dot, object? Root);

    private void Execute(List<Node> nodes, Scope scope, StringBuilder output)
    {
        foreach (var node in nodes)
        {
            switch (node)
            {
                case TextNode text:
                    output.Append(text.Text);
                    break;
                case OutputNode print:
                    output.Append(Print(Evaluate(print.Pipeline, scope), print.Pipeline));
                    break;
                case BlockNode { Kind: "if" } block:
                    Execute((Truthy(Evaluate(block.Pipeline, scope)) ? block.Then : block.Else) ?? [], scope, output);
                    break;
                case BlockNode { Kind: "with" } block:
                    var value = Evaluate(block.Pipeline, scope);
                    if (Truthy(value))
                    {
                        Execute(block.Then, scope with { Dot = value }, output);
                    }
                    else
                    {
                        Execute(block.Else ?? [], scope, output);
                    }
                    break;
                case BlockNode { Kind: "range" } block:
                    IList<object?> items = Evaluate(block.Pipeline, scope) switch
                    {
                        null => [],
                        IList<object?> list => list,
                        IDictionary<string, object?> map => map.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => kv.Value).ToList(),
                        var other => throw new TemplateException($"{block.Pipeline.File}:{block.Line}: range over {other.GetType().Name}"),
                    };
                    if (items.Count == 0)
                    {
                        Execute(block.Else ?? [], scope, output);
                    }
                    foreach (var item in items)
                    {
                        Execute(block.Then, scope with { Dot = item }, output);
                    }
                    break;
                default:
                    throw new InvalidOperationException(node.GetType().Name);
            }
        }
    }

    private object? Evaluate(Pipeline pipeline, Scope scope)
    {
        object? result = null;
        var first = true;
        foreach (var command in pipeline.Commands)
        {
            var args = command.Operands.Select(o => Value(o, scope, pipeline)).ToList();
            if (command.Function is null)
            {
                result = args[0];
            }
            else
            {
                if (!first)
                {
                    args.Add(result);
                }
                result = Call(command.Function, args, pipeline);
            }
            first = false;
        }
        return result;
    }

    private static object? Value(Operand operand, Scope scope, Pipeline pipeline)
    {
        if (operand is Literal literal)
        {
            return literal.Value;
        }
        var field = (Field)operand;
        var value = field.FromRoot ? scope.Root : scope.Dot;
        foreach (var name in field.Path)
        {
            value = value switch
            {
                StrictMap strict => strict.TryGetValue(name, out var v) ? v
                    : throw new TemplateException($"{pipeline.File}:{pipeline.Line}: .{strict.Name} has no field {name}"),
                IDictionary<string, object?> map => map.TryGetValue(name, out var v) ? v : null,
                null => throw new TemplateException($"{pipeline.File}:{pipeline.Line}: nil pointer evaluating .{string.Join('.', field.Path)} (at .{name})"),
                var other => throw new TemplateException($"{pipeline.File}:{pipeline.Line}: can't evaluate field {name} in a {other.GetType().Name}"),
            };
        }
        return value;
    }

    private object? Call(string function, List<object?> args, Pipeline pipeline)
    {
        TemplateException Error(string message) => new($"{pipeline.File}:{pipeline.Line}: {function}: {message}");

        void Arity(int count)
        {
            if (args.Count != count)
            {
                throw Error($"takes {count} argument(s), got {args.Count}");
            }
        }

        int Int(object? value) => value is long l ? checked((int)l) : throw Error($"expects a number, got {value ?? "nil"}");

        string Text(object? value) => value as string ?? Print(value, pipeline);

        switch (function)
        {
            case "include":
                Arity(2);
                var name = args[0] as string ?? throw Error("the template name must be a string");
                if (!_defines.TryGetValue(name, out var body))
                {
                    throw Error($"no template \"{name}\"");
                }
                var output = new StringBuilder();
                Execute(body, new Scope(args[1], args[1]), output);
                return output.ToString();
            case "quote":
                return string.Join(' ', args.Where(a => a is not null).Select(a => Yaml.Quote(Text(a))));
            case "default":
                Arity(2);
                return Truthy(args[1]) ? args[1] : args[0];
            case "toYaml":
                Arity(1);
                return Yaml.ToYaml(args[0]);
            case "nindent":
                Arity(2);
                return "\n" + Indent(Int(args[0]), Text(args[1]));
            case "indent":
                Arity(2);
                return Indent(Int(args[0]), Text(args[1]));
            case "trunc":
                Arity(2);
                var text = Text(args[1]);
                var length = Int(args[0]);
                return length >= 0 && text.Length > length ? text[..length] : text;
            case "trimSuffix":
                Arity(2);
                var suffix = Text(args[0]);
                var value = Text(args[1]);
                return suffix.Length > 0 && value.EndsWith(suffix, StringComparison.Ordinal) ? value[..^suffix.Length] : value;
            case "required":
                Arity(2);
                return args[1] is null or "" ? throw new TemplateException(Text(args[0])) : args[1];
            case "not":
                Arity(1);
                return !Truthy(args[0]);
            default:
                throw Error("unknown function");
        }
    }

    private static string Indent(int spaces, string text)
    {
        var pad = new string(' ', spaces);
        return pad + text.Replace("\n", "\n" + pad, StringComparison.Ordinal);
    }

    /// <summary>Go's notion of empty: false, 0, nil, "", and empty lists and maps are false.</summary>
    public static bool Truthy(object? value) => value switch
    {
        null => false,
        bool b => b,
        long l => l != 0,
        double d => d != 0,
        string s => s.Length > 0,
        System.Collections.ICollection c => c.Count > 0,
        _ => true,
    };

    /// <summary>What Helm prints for a value: nothing for nil (Helm removes Go's "&lt;no value&gt;").</summary>
    private static string Print(object? value, Pipeline pipeline) => value switch
    {
        null => "",
        string s => s,
        bool b => b ? "true" : "false",
        long l => l.ToString(CultureInfo.InvariantCulture),
        double d => d.ToString("R", CultureInfo.InvariantCulture),
        _ => throw new TemplateException($"{pipeline.File}:{pipeline.Line}: printing a {value.GetType().Name} would write Go syntax into YAML; use toYaml"),
    };
}
