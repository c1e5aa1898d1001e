using Connect.Runtime.Python;

namespace Connect.Runtime.Tests;

[Collection(PythonCollection.Name)]
public sealed class NotebookRendererTests : IDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(90);
    private readonly PythonFixture _python;
    private readonly TestDirectory _dir = new();

    public NotebookRendererTests(PythonFixture python)
    {
        _python = python;
    }

    public void Dispose() => _dir.Dispose();

    [Fact]
    public async Task Renders_executed_output_with_the_environments_python()
    {
        var env = await _python.SystemEnvironmentAsync();
        var notebook = WriteNotebook("nb/analysis.ipynb",
            "# source-marker-7f3a\nimport sys\nprint('answer', 6 * 7)\nprint('prefix', sys.prefix)",
            "open('written-by-notebook.txt', 'w').write('x')");
        var output = _dir.Combine("out", "index.html");
        var log = new List<string>();

        await NotebookRenderer.RenderAsync(env, notebook, output, hideAllInput: false, l => { lock (log) { log.Add(l); } }, Timeout, default);

        var html = await File.ReadAllTextAsync(output);
        Assert.Contains("answer 42", html, StringComparison.Ordinal);
        Assert.Contains("prefix " + env.Directory, html, StringComparison.Ordinal);
        Assert.Contains("source-marker-7f3a", html, StringComparison.Ordinal);
        // The kernel runs in the notebook's directory.
        Assert.True(File.Exists(_dir.Combine("nb", "written-by-notebook.txt")));
        Assert.Single(Directory.EnumerateFiles(_dir.Combine("out")));
        Assert.Contains(log, l => l.Contains("Converting notebook", StringComparison.Ordinal));

        await NotebookRenderer.RenderAsync(env, notebook, output, hideAllInput: true, _ => { }, Timeout, default);
        var hidden = await File.ReadAllTextAsync(output);
        Assert.Contains("answer 42", hidden, StringComparison.Ordinal);
        Assert.DoesNotContain("source-marker-7f3a", hidden, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_failing_cell_throws_with_the_error_and_keeps_the_previous_output()
    {
        var env = await _python.SystemEnvironmentAsync();
        var notebook = WriteNotebook("nb/bad.ipynb", "raise ValueError('boom-5c1d')");
        var output = _dir.Write("out/index.html", "previous render");

        var error = await Assert.ThrowsAsync<NotebookRenderException>(() =>
            NotebookRenderer.RenderAsync(env, notebook, output, hideAllInput: false, _ => { }, Timeout, default));

        Assert.Contains("boom-5c1d", error.Message, StringComparison.Ordinal);
        Assert.Equal("previous render", await File.ReadAllTextAsync(output));
        Assert.Single(Directory.EnumerateFiles(_dir.Combine("out")));
    }

    private string WriteNotebook(string relativePath, params string[] cells)
    {
        var notebook = new
        {
            cells = cells.Select(source => new
            {
                cell_type = "code",
                execution_count = (int?)null,
                metadata = new { },
                outputs = Array.Empty<object>(),
                source,
            }),
            metadata = new
            {
                kernelspec = new { display_name = "Python 3", language = "python", name = "python3" },
                language_info = new { name = "python" },
            },
            nbformat = 4,
            nbformat_minor = 5,
        };
        return _dir.Write(relativePath, System.Text.Json.JsonSerializer.Serialize(notebook));
    }
}
