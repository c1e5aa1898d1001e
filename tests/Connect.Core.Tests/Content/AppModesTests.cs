using Connect.Core.Content;

namespace Connect.Core.Tests.Content;

public sealed class AppModesTests
{
    // mode, ordinal, interactive, rendered, python, job tag — transcribed from spec §2.2.
    public static TheoryData<string, int, bool, bool, bool, string> Table => new()
    {
        { "unknown", 0, false, false, false, "unknown" },
        { "shiny", 1, true, false, false, "run_app" },
        { "rmd-shiny", 2, true, false, false, "run_app" },
        { "rmd-static", 3, false, true, false, "build_report" },
        { "static", 4, false, false, false, "unknown" },
        { "api", 5, true, false, false, "run_api" },
        { "tensorflow-saved-model", 6, true, false, false, "run_tensorflow" },
        { "jupyter-static", 7, false, true, true, "build_jupyter" },
        { "python-api", 8, true, false, true, "run_python_api" },
        { "python-dash", 9, true, false, true, "run_dash_app" },
        { "python-streamlit", 10, true, false, true, "run_streamlit" },
        { "python-bokeh", 11, true, false, true, "run_bokeh_app" },
        { "python-fastapi", 12, true, false, true, "run_fastapi_app" },
        { "quarto-shiny", 13, true, false, false, "run_app" },
        { "quarto-static", 14, false, true, false, "build_report" },
        { "python-shiny", 15, true, false, true, "run_pyshiny_app" },
        { "jupyter-voila", 16, true, false, true, "run_voila_app" },
        { "python-gradio", 17, true, false, true, "unknown" },
        { "python-panel", 18, true, false, true, "unknown" },
        { "nodejs", 20, true, false, false, "unknown" },
    };

    [Theory]
    [MemberData(nameof(Table))]
    public void Table_matches_spec(string mode, int ordinal, bool interactive, bool rendered, bool python, string jobTag)
    {
        Assert.True(AppModes.IsKnown(mode));
        Assert.Equal(ordinal, AppModes.Ordinal(mode));
        Assert.Equal(interactive, AppModes.IsInteractive(mode));
        Assert.Equal(rendered, AppModes.IsRendered(mode));
        Assert.Equal(python, AppModes.UsesPython(mode));
        Assert.Equal(mode == "static", AppModes.IsStatic(mode));
        Assert.Equal(jobTag, AppModes.JobTag(mode));
    }

    [Fact]
    public void Constants_cover_exactly_the_table()
    {
        var constants = typeof(AppModes).GetFields()
            .Where(f => f.IsLiteral && f.FieldType == typeof(string))
            .Select(f => (string)f.GetRawConstantValue()!)
            .Order(StringComparer.Ordinal)
            .ToArray();
        var table = Table.Select(row => (string)row[0]).Order(StringComparer.Ordinal).ToArray();

        Assert.Equal(table, constants);
        Assert.Equal(table, AppModes.All.Order(StringComparer.Ordinal).ToArray());
        Assert.Equal(AppModes.All.Count, AppModes.All.Select(AppModes.Ordinal).Distinct().Count());
    }

    [Fact]
    public void Every_deployable_mode_is_exactly_one_of_interactive_rendered_or_static()
    {
        foreach (var mode in AppModes.All.Where(m => m != AppModes.Unknown))
        {
            var kinds = new[] { AppModes.IsInteractive(mode), AppModes.IsRendered(mode), AppModes.IsStatic(mode) };
            Assert.True(kinds.Count(k => k) == 1, $"{mode} belongs to {kinds.Count(k => k)} categories");
        }
    }

    [Theory]
    [InlineData("")]
    [InlineData("flask")]
    [InlineData("Static")]
    [InlineData("python-fastapi ")]
    [InlineData("nodejs-api")]
    public void Unrecognised_modes_are_unknown(string mode)
    {
        Assert.False(AppModes.IsKnown(mode));
        Assert.Equal(0, AppModes.Ordinal(mode));
        Assert.False(AppModes.IsInteractive(mode));
        Assert.False(AppModes.IsRendered(mode));
        Assert.False(AppModes.IsStatic(mode));
        Assert.False(AppModes.UsesPython(mode));
        Assert.Equal("unknown", AppModes.JobTag(mode));
    }
}
