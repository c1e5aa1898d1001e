namespace Connect.Core.Bundles;

/// <summary>A manifest.json that cannot be used; the message is written for the publisher.</summary>
public sealed class ManifestException : Exception
{
    public ManifestException(string message)
        : base(message)
    {
    }

    public ManifestException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
