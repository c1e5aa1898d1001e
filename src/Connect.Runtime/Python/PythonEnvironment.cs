namespace Connect.Runtime.Python;

/// <summary>A ready virtual environment: its directory, its python and the hash that names it.</summary>
public sealed record PythonEnvironment(string Directory, string PythonPath, string Hash);

/// <summary>Building an environment failed; the message carries pip's (or venv's) own last error lines.</summary>
public sealed class PythonEnvironmentException : Exception
{
    public PythonEnvironmentException()
    {
    }

    public PythonEnvironmentException(string message)
        : base(message)
    {
    }

    public PythonEnvironmentException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}

/// <summary>Rendering a notebook failed; the message carries the tail of nbconvert's output.</summary>
public sealed class NotebookRenderException : Exception
{
    public NotebookRenderException()
    {
    }

    public NotebookRenderException(string message)
        : base(message)
    {
    }

    public NotebookRenderException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
