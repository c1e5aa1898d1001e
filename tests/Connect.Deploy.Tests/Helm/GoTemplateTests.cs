namespace Connect.Deploy.Tests.Helm;

/// <summary>The renderer behaves like Go's text/template with Helm's functions, for the subset it supports, and refuses the rest.</summary>
public class GoTemplateTests
{
    private static string Render(string template, string values = "{}", params (string Name, string Text)[] helpers)
    {
        var set = new TemplateSet();
        foreach (var (name, text) in helpers)
        {
            set.Add(name, text);
        }
        set.Add("t.yaml", template);
        var root = new StrictMap("")
        {
            ["Values"] = Yaml.Load(values),
            ["Release"] = new StrictMap("Release") { ["Name"] = "rel", ["Namespace"] = "ns", ["Service"] = "Helm" },
            ["Chart"] = new StrictMap("Chart") { ["Name"] = "chart", ["Version"] = "1.2.3", ["AppVersion"] = "4.5" },
        };
        return set.Render("t.yaml", root);
    }

    [Theory]
    [InlineData("a {{ .Values.x }} b", "x: 1", "a 1 b")]
    [InlineData("a  {{- .Values.x -}}  \n b", "x: y", "ayb")]
    [InlineData("a {{/* note */}}b", "{}", "a b")]
    [InlineData("a\n{{- /* note */ -}}\nb", "{}", "ab")]
    [InlineData("{{ .Values.missing }}", "{}", "")]
    [InlineData("{{ .Values.x | quote }}", "x: 3939", "\"3939\"")]
    [InlineData("{{ .Values.x | quote }}", "x: 'say \"hi\"'", "\"say \\\"hi\\\"\"")]
    [InlineData("{{ quote .Values.missing }}", "{}", "")]
    [InlineData("{{ .Values.x | default \"d\" }}", "x: ''", "d")]
    [InlineData("{{ .Values.x | default \"d\" }}", "x: v", "v")]
    [InlineData("{{ default .Release.Name .Values.x }}", "x: ''", "rel")]
    [InlineData("{{ .Values.x | trunc 3 | trimSuffix \"-\" }}", "x: ab-cd", "ab")]
    [InlineData("x:{{ .Values.m | toYaml | nindent 2 }}", "m: {b: 2, a: 'yes', c: [1, {d: true}]}", "x:\n  a: \"yes\"\n  b: 2\n  c:\n  - 1\n  - d: true")]
    [InlineData("{{ .Values.x | indent 2 }}", "x: \"a\\nb\"", "  a\n  b")]
    [InlineData("{{ if .Values.x }}yes{{ else }}no{{ end }}", "x: false", "no")]
    [InlineData("{{ if not .Values.x }}yes{{ else }}no{{ end }}", "x: 0", "yes")]
    [InlineData("{{ if .Values.a }}a{{ else if .Values.b }}b{{ else }}c{{ end }}", "{a: '', b: x}", "b")]
    [InlineData("{{ with .Values.m }}{{ .k }}{{ else }}none{{ end }}", "m: {k: v}", "v")]
    [InlineData("{{ with .Values.m }}{{ .k }}{{ else }}none{{ end }}", "m: {}", "none")]
    [InlineData("{{ with .Values.m }}{{ $.Release.Name }}{{ end }}", "m: {k: v}", "rel")]
    [InlineData("{{ range .Values.l }}[{{ . }}]{{ end }}", "l: [a, b]", "[a][b]")]
    [InlineData("{{ range .Values.l }}[{{ . }}]{{ else }}empty{{ end }}", "l: []", "empty")]
    [InlineData("{{ .Chart.Name }}-{{ .Chart.Version }}", "{}", "chart-1.2.3")]
    public void Renders_like_go_templates(string template, string values, string expected) =>
        Assert.Equal(expected, Render(template, values));

    [Fact]
    public void Include_renders_a_define_with_the_given_data()
    {
        var helpers = ("_h.tpl", "{{- define \"name\" -}}\n{{ .Release.Name }}-x\n{{- end -}}\n{{- define \"labels\" -}}\na: {{ include \"name\" . }}\nb: c\n{{- end -}}");
        Assert.Equal("m:\n  a: rel-x\n  b: c", Render("m:\n  {{- include \"labels\" . | nindent 2 }}", "{}", helpers));
    }

    [Theory]
    [InlineData("{{ required \"give x\" .Values.x }}", "give x")]
    [InlineData("{{ .Values.a.b }}", "nil pointer")]
    [InlineData("{{ .Values.m }}", "use toYaml")]
    [InlineData("{{ include \"nope\" . }}", "no template")]
    public void Fails_where_helm_fails(string template, string message)
    {
        var e = Assert.Throws<TemplateException>(() => Render(template, "m: {k: v}"));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    /// <summary>The subset is closed: what the renderer does not implement fails at parse time, even in a branch not taken.</summary>
    [Theory]
    [InlineData("{{ .Values.x | upper }}", "function 'upper'")]
    [InlineData("{{ if false }}{{ tpl .Values.x . }}{{ end }}", "function 'tpl'")]
    [InlineData("{{ lookup \"v1\" \"Secret\" \"ns\" \"n\" }}", "function 'lookup'")]
    [InlineData("{{ toYaml .Values.x | b64enc }}", "function 'b64enc'")]
    [InlineData("{{ printf \"%s\" .Values.x }}", "function 'printf'")]
    [InlineData("{{ template \"x\" . }}", "'template'")]
    [InlineData("{{ block \"x\" . }}{{ end }}", "'block'")]
    [InlineData("{{ $x := .Values.x }}", "variables")]
    [InlineData("{{ range $i, $v := .Values.l }}{{ end }}", "variables")]
    [InlineData("{{ default (include \"a\" .) .Values.x }}", "parenthesised")]
    [InlineData("{{ .Capabilities.KubeVersion.Version }}", ".Capabilities")]
    [InlineData("{{ .Files.Get \"x\" }}", ".Files")]
    [InlineData("{{ .Release.Revision }}", ".Release supports")]
    [InlineData("{{ .Values.x \"arg\" }}", "not a function")]
    [InlineData("{{ if .Values.x }}", "missing its end")]
    [InlineData("{{ end }}", "without a block")]
    [InlineData("{{ if .Values.x }}{{ define \"a\" }}{{ end }}{{ end }}", "top level")]
    public void Rejects_everything_outside_the_subset(string template, string message)
    {
        var e = Assert.Throws<TemplateException>(() => new TemplateSet().Add("t.yaml", template));
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.StartsWith("t.yaml:1:", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Errors_name_the_line()
    {
        var e = Assert.Throws<TemplateException>(() => new TemplateSet().Add("t.yaml", "a: 1\nb: 2\nc: {{ .Values.x | upper }}\n"));
        Assert.StartsWith("t.yaml:3:", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("plain")]
    [InlineData("yes")]
    [InlineData("123")]
    [InlineData("1.5")]
    [InlineData("true")]
    [InlineData("null")]
    [InlineData("a: b")]
    [InlineData("x #y")]
    [InlineData("")]
    [InlineData("-leading")]
    [InlineData("http://$(POD_IP):3939")]
    [InlineData("[{\"HTTP\": 80}]")]
    public void ToYaml_writes_strings_that_read_back_as_the_same_string(string text)
    {
        var map = new Dictionary<string, object?> { ["k"] = text };
        Assert.Equal(text, Y.Get(Yaml.Load(Yaml.ToYaml(map)), "k"));
    }

    [Fact]
    public void ToYaml_round_trips_values()
    {
        const string source = "a: 1\nb: [x, {c: true, d: [1, 2]}, []]\ne: {}\nf: null\ng: {h: 'on', i: 0.5}\n";
        var value = Yaml.Load(source);
        Assert.Equal(Yaml.ToYaml(value), Yaml.ToYaml(Yaml.Load(Yaml.ToYaml(value))));
        Assert.Equivalent(value, Yaml.Load(Yaml.ToYaml(value)), strict: true);
    }
}
