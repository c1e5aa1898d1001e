namespace Connect.Core.Bundles;

/// <summary>Where a bundle was extracted to, with the number of regular files and their total size.</summary>
public sealed record BundleExtraction(string Directory, int FileCount, long TotalBytes);
