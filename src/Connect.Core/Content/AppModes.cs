namespace Connect.Core.Content;

/// <summary>
/// Connect app modes as used in manifest.json and the v1 API (strings) and in the v0 API (ordinals).
/// </summary>
public static class AppModes
{
    public const string Unknown = "unknown";
    public const string Shiny = "shiny";
    public const string RmdShiny = "rmd-shiny";
    public const string RmdStatic = "rmd-static";
    public const string Static = "static";
    public const string Api = "api";
    public const string TensorFlowSavedModel = "tensorflow-saved-model";
    public const string JupyterStatic = "jupyter-static";
    public const string PythonApi = "python-api";
    public const string PythonDash = "python-dash";
    public const string PythonStreamlit = "python-streamlit";
    public const string PythonBokeh = "python-bokeh";
    public const string PythonFastApi = "python-fastapi";
    public const string QuartoShiny = "quarto-shiny";
    public const string QuartoStatic = "quarto-static";
    public const string PythonShiny = "python-shiny";
    public const string JupyterVoila = "jupyter-voila";
    public const string PythonGradio = "python-gradio";
    public const string PythonPanel = "python-panel";
    public const string NodeJs = "nodejs";

    // Ordinals are wire values of the v0 API; 19 is unassigned upstream, so the table is not contiguous.
    private static readonly Dictionary<string, int> Ordinals = new(StringComparer.Ordinal)
    {
        [Unknown] = 0,
        [Shiny] = 1,
        [RmdShiny] = 2,
        [RmdStatic] = 3,
        [Static] = 4,
        [Api] = 5,
        [TensorFlowSavedModel] = 6,
        [JupyterStatic] = 7,
        [PythonApi] = 8,
        [PythonDash] = 9,
        [PythonStreamlit] = 10,
        [PythonBokeh] = 11,
        [PythonFastApi] = 12,
        [QuartoShiny] = 13,
        [QuartoStatic] = 14,
        [PythonShiny] = 15,
        [JupyterVoila] = 16,
        [PythonGradio] = 17,
        [PythonPanel] = 18,
        [NodeJs] = 20,
    };

    private static readonly HashSet<string> Interactive = new(StringComparer.Ordinal)
    {
        Shiny, RmdShiny, Api, TensorFlowSavedModel, PythonApi, PythonDash, PythonStreamlit, PythonBokeh,
        PythonFastApi, QuartoShiny, PythonShiny, JupyterVoila, PythonGradio, PythonPanel, NodeJs,
    };

    private static readonly HashSet<string> Rendered = new(StringComparer.Ordinal) { RmdStatic, JupyterStatic, QuartoStatic };

    private static readonly HashSet<string> Python = new(StringComparer.Ordinal)
    {
        PythonApi, PythonDash, PythonStreamlit, PythonBokeh, PythonFastApi, PythonShiny, PythonGradio, PythonPanel,
        JupyterStatic, JupyterVoila,
    };

    private static readonly Dictionary<string, string> JobTags = new(StringComparer.Ordinal)
    {
        [Shiny] = "run_app",
        [RmdShiny] = "run_app",
        [QuartoShiny] = "run_app",
        [Api] = "run_api",
        [PythonApi] = "run_python_api",
        [PythonFastApi] = "run_fastapi_app",
        [PythonDash] = "run_dash_app",
        [PythonStreamlit] = "run_streamlit",
        [PythonBokeh] = "run_bokeh_app",
        [PythonShiny] = "run_pyshiny_app",
        [JupyterVoila] = "run_voila_app",
        [TensorFlowSavedModel] = "run_tensorflow",
        [JupyterStatic] = "build_jupyter",
        [RmdStatic] = "build_report",
        [QuartoStatic] = "build_report",
    };

    /// <summary>Every app mode string, in ordinal order.</summary>
    public static IReadOnlyList<string> All { get; } = Ordinals.OrderBy(p => p.Value).Select(p => p.Key).ToArray();

    public static bool IsKnown(string mode) => mode is not null && Ordinals.ContainsKey(mode);

    /// <summary>The v0 integer for <paramref name="mode"/>; anything unrecognised maps to 0 (<c>unknown</c>).</summary>
    public static int Ordinal(string mode) => mode is not null && Ordinals.TryGetValue(mode, out var ordinal) ? ordinal : 0;

    /// <summary>True for modes served by a long-running process.</summary>
    public static bool IsInteractive(string mode) => mode is not null && Interactive.Contains(mode);

    /// <summary>True for modes rendered once into static output (notebooks, R Markdown, Quarto).</summary>
    /// <summary>
    /// Interactive apps whose browser sessions hold state in one process (Shiny, Streamlit, Dash…): the front end pins
    /// a session to its process. APIs are stateless per request and are never pinned.
    /// </summary>
    public static bool IsSessionPinned(string mode) => IsInteractive(mode) && !Apis.Contains(mode);

    private static readonly HashSet<string> Apis = new(StringComparer.Ordinal) { Api, TensorFlowSavedModel, PythonApi, PythonFastApi };

    public static bool IsRendered(string mode) => mode is not null && Rendered.Contains(mode);

    public static bool IsStatic(string mode) => string.Equals(mode, Static, StringComparison.Ordinal);

    /// <summary>True for modes whose runtime or renderer is a Python environment built from the bundle.</summary>
    public static bool UsesPython(string mode) => mode is not null && Python.Contains(mode);

    /// <summary>The job tag Connect records for the process that runs or renders <paramref name="mode"/>.</summary>
    public static string JobTag(string mode) => mode is not null && JobTags.TryGetValue(mode, out var tag) ? tag : Unknown;
}
