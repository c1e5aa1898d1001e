namespace Connect.Core.Bundles;

/// <summary>Upper bounds applied while extracting a bundle, measured on the bytes actually written.</summary>
public sealed record BundleLimits(long MaxTotalBytes, int MaxFiles, long MaxFileBytes)
{
    public static BundleLimits Default { get; } = new(
        MaxTotalBytes: 2L * 1024 * 1024 * 1024,
        MaxFiles: 100_000,
        MaxFileBytes: 1L * 1024 * 1024 * 1024);
}
