namespace Connect.Core.Bundles;

/// <summary>An uploaded bundle that was refused; the message is written for the publisher.</summary>
public sealed class BundleException : Exception
{
    public BundleException(string message)
        : base(message)
    {
    }

    public BundleException(string message, Exception innerException)
        : base(message, innerException)
    {
    }
}
