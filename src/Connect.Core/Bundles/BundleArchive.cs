using System.Buffers;
using System.Formats.Tar;
using System.IO.Compression;
using System.Security.Cryptography;

namespace Connect.Core.Bundles;

/// <summary>
/// Extracts uploaded bundles (tar.gz, or plain tar) safely: every entry is confined to the target directory,
/// only regular files and directories are materialised, limits are enforced on bytes actually written, and the
/// result appears at the target all at once or not at all.
/// </summary>
/// <remarks>
/// Links of any kind are rejected rather than kept: rsconnect only ever bundles regular files, and a link that is
/// harmless at extraction time can still be redirected by later content or mislead tools that run inside the bundle.
/// Duplicate entries are rejected rather than "last wins", so the files on disk are exactly what the archive lists once.
/// </remarks>
public static class BundleArchive
{
    private const int CopyBufferSize = 81920;
    private const int TarBlockSize = 512;

    private const UnixFileMode FileMode644 =
        UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;

    private const UnixFileMode FileMode755 = FileMode644 | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;

    // Only the extracting process needs access until the bundle is complete and moved into place.
    private const UnixFileMode PrivateDirectoryMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute;

    // Headers, padding and end blocks decompress to data that is never written to disk; this allowance bounds them
    // generously while still stopping archives that inflate without limit.
    private const long HeaderAllowanceBase = 64L * 1024 * 1024;
    private const long HeaderAllowancePerEntry = 8 * 1024;

    public static async Task<BundleExtraction> ExtractAsync(
        string archivePath, string targetDirectory, BundleLimits limits, CancellationToken ct = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(archivePath);
        ArgumentException.ThrowIfNullOrEmpty(targetDirectory);
        ArgumentNullException.ThrowIfNull(limits);

        var target = Path.TrimEndingDirectorySeparator(Path.GetFullPath(targetDirectory));
        var parent = Path.GetDirectoryName(target)
            ?? throw new ArgumentException("the target directory cannot be a filesystem root", nameof(targetDirectory));
        if (Directory.Exists(target) || File.Exists(target))
        {
            throw new IOException($"'{target}' already exists; bundles are never extracted over existing content");
        }

        await using var archive = new FileStream(
            archivePath, FileMode.Open, FileAccess.Read, FileShare.Read, CopyBufferSize, FileOptions.SequentialScan);

        Directory.CreateDirectory(parent);
        var temp = CreateTempSibling(target);
        try
        {
            var extractor = new Extractor(temp, limits);
            await extractor.RunAsync(archive, ct).ConfigureAwait(false);
            if (!OperatingSystem.IsWindows())
            {
                File.SetUnixFileMode(temp, FileMode755);
            }

            Directory.Move(temp, target);
            return new BundleExtraction(target, extractor.FileCount, extractor.TotalBytes);
        }
        catch
        {
            TryDeleteDirectory(temp);
            throw;
        }
    }

    private static string CreateTempSibling(string target)
    {
        while (true)
        {
            var candidate = target + ".tmp-" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
            if (Directory.Exists(candidate) || File.Exists(candidate))
            {
                continue;
            }

            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(candidate);
            }
            else
            {
                Directory.CreateDirectory(candidate, PrivateDirectoryMode);
            }

            return candidate;
        }
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            // The original failure is what the caller needs to see; a leftover temp directory is recognisable by name.
        }
    }

    private sealed class Extractor
    {
        private readonly string _root;
        private readonly BundleLimits _limits;
        private readonly HashSet<string> _files;
        private readonly HashSet<string> _directories;
        private int _ignoredEntries;

        public Extractor(string root, BundleLimits limits)
        {
            _root = root;
            _limits = limits;
            // Two names that differ only by case would land on the same file on a case-insensitive filesystem.
            var comparer = OperatingSystem.IsLinux() ? StringComparer.Ordinal : StringComparer.OrdinalIgnoreCase;
            _files = new HashSet<string>(comparer);
            _directories = new HashSet<string>(comparer);
        }

        public int FileCount { get; private set; }

        public long TotalBytes { get; private set; }

        public async Task RunAsync(FileStream archive, CancellationToken ct)
        {
            var magic = new byte[2];
            var sniffed = await archive.ReadAtLeastAsync(magic, magic.Length, throwOnEndOfStream: false, ct).ConfigureAwait(false);
            archive.Position = 0;
            var gzip = sniffed == 2 && magic[0] == 0x1f && magic[1] == 0x8b;

            await using var decompressed = gzip ? new GZipStream(archive, CompressionMode.Decompress, leaveOpen: true) : null;
            var counting = new CountingReadStream(decompressed ?? (Stream)archive, DecompressedCap());
            await using var reader = new TarReader(counting, leaveOpen: true);
            var buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
            try
            {
                while (true)
                {
                    var before = counting.BytesRead;
                    var entry = await ReadArchive(() => reader.GetNextEntryAsync(copyData: false, ct)).ConfigureAwait(false);
                    if (entry is null)
                    {
                        // A well-formed tar ends with zero blocks; hitting end-of-stream first means it was cut short.
                        if (counting.BytesRead - before < TarBlockSize)
                        {
                            throw InvalidArchive("the archive is empty or truncated");
                        }

                        break;
                    }

                    await ExtractEntryAsync(entry, buffer, ct).ConfigureAwait(false);
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            ApplyDirectoryModes();
        }

        private long DecompressedCap()
        {
            var perEntry = (long)Math.Max(_limits.MaxFiles, 0) * HeaderAllowancePerEntry;
            var cap = _limits.MaxTotalBytes + HeaderAllowanceBase + perEntry;
            return cap < 0 ? long.MaxValue : cap;
        }

        private async Task ExtractEntryAsync(TarEntry entry, byte[] buffer, CancellationToken ct)
        {
            if (entry.EntryType == TarEntryType.GlobalExtendedAttributes)
            {
                CountIgnored();
                return;
            }

            if (!BundlePaths.TryNormalize(entry.Name, out var relative, out var problem))
            {
                throw Rejected(entry.Name, problem!);
            }

            try
            {
                await MaterialiseAsync(entry, relative, buffer, ct).ConfigureAwait(false);
            }
            catch (PathTooLongException ex)
            {
                // The checks above follow Linux limits; another file system may allow less. Still the publisher's problem.
                throw new BundleException($"bundle rejected: entry '{Display(entry.Name)}' is invalid (file name too long: the file system refused it)", ex);
            }
        }

        private async Task MaterialiseAsync(TarEntry entry, string relative, byte[] buffer, CancellationToken ct)
        {
            switch (entry.EntryType)
            {
                case TarEntryType.RegularFile:
                case TarEntryType.V7RegularFile:
                case TarEntryType.ContiguousFile:
                    await WriteFileAsync(entry, relative, buffer, ct).ConfigureAwait(false);
                    break;
                case TarEntryType.Directory:
                    CreateDirectoryEntry(entry.Name, relative);
                    break;
                case TarEntryType.SymbolicLink:
                    throw Rejected(entry.Name, "is a symbolic link; bundles may contain only regular files and directories");
                case TarEntryType.HardLink:
                    throw Rejected(entry.Name, "is a hard link; bundles may contain only regular files and directories");
                case TarEntryType.CharacterDevice:
                case TarEntryType.BlockDevice:
                    throw Rejected(entry.Name, "is a device file; bundles may contain only regular files and directories");
                case TarEntryType.Fifo:
                    throw Rejected(entry.Name, "is a named pipe; bundles may contain only regular files and directories");
                default:
                    throw Rejected(entry.Name, $"has unsupported tar entry type {entry.EntryType}; bundles may contain only regular files and directories");
            }
        }

        private async Task WriteFileAsync(TarEntry entry, string relative, byte[] buffer, CancellationToken ct)
        {
            if (relative.Length == 0)
            {
                throw Rejected(entry.Name, "is a file entry without a file name");
            }

            if (FileCount >= _limits.MaxFiles)
            {
                throw new BundleException($"bundle rejected: it contains more than {_limits.MaxFiles} files");
            }

            // Header sizes give an early, cheap refusal; the copy below still counts what really arrives.
            if (entry.Length > _limits.MaxFileBytes)
            {
                throw PerFileLimit(entry.Name);
            }

            if (entry.Length > _limits.MaxTotalBytes - TotalBytes)
            {
                throw TotalLimit();
            }

            RegisterPath(entry.Name, relative, isFile: true);
            var fullPath = BundlePaths.Resolve(_root, relative) ?? throw Rejected(entry.Name, "leaves the bundle directory");
            EnsureParentDirectory(fullPath);

            long written = 0;
            var data = entry.DataStream;
            var options = new FileStreamOptions
            {
                Mode = FileMode.CreateNew,
                Access = FileAccess.Write,
                Share = FileShare.None,
                BufferSize = 0,
            };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }

            await using (var output = new FileStream(fullPath, options))
            {
                while (data is not null)
                {
                    var read = await ReadArchive(() => data.ReadAsync(buffer.AsMemory(0, CopyBufferSize), ct)).ConfigureAwait(false);
                    if (read == 0)
                    {
                        break;
                    }

                    written += read;
                    if (written > _limits.MaxFileBytes)
                    {
                        throw PerFileLimit(entry.Name);
                    }

                    if (written > _limits.MaxTotalBytes - TotalBytes)
                    {
                        throw TotalLimit();
                    }

                    await output.WriteAsync(buffer.AsMemory(0, read), ct).ConfigureAwait(false);
                }
            }

            if (written != entry.Length)
            {
                throw InvalidArchive($"entry '{Display(entry.Name)}' is truncated ({written} of {entry.Length} bytes)");
            }

            if (!OperatingSystem.IsWindows())
            {
                // Archive modes are publisher-controlled; only the owner-execute bit is worth keeping, for scripts.
                var executable = (entry.Mode & UnixFileMode.UserExecute) != 0;
                File.SetUnixFileMode(fullPath, executable ? FileMode755 : FileMode644);
            }

            FileCount++;
            TotalBytes += written;
        }

        private void CreateDirectoryEntry(string name, string relative)
        {
            if (relative.Length == 0)
            {
                return;
            }

            RegisterPath(name, relative, isFile: false);
            var fullPath = BundlePaths.Resolve(_root, relative) ?? throw Rejected(name, "leaves the bundle directory");
            CreateDirectory(fullPath);
        }

        private void RegisterPath(string name, string relative, bool isFile)
        {
            if (_files.Contains(relative))
            {
                throw Rejected(name, "appears more than once in the archive");
            }

            if (isFile && _directories.Contains(relative))
            {
                throw Rejected(name, "is both a file and a directory in the archive");
            }

            for (var slash = relative.IndexOf('/'); slash >= 0; slash = relative.IndexOf('/', slash + 1))
            {
                var ancestor = relative[..slash];
                if (_files.Contains(ancestor))
                {
                    throw Rejected(name, $"is inside '{Display(ancestor)}', which is a file");
                }

                _directories.Add(ancestor);
            }

            if (isFile)
            {
                _files.Add(relative);
            }
            else
            {
                _directories.Add(relative);
            }

            if (_directories.Count > _limits.MaxFiles)
            {
                throw new BundleException($"bundle rejected: it contains more than {_limits.MaxFiles} directories");
            }
        }

        private void CountIgnored()
        {
            if (++_ignoredEntries > _limits.MaxFiles)
            {
                throw new BundleException($"bundle rejected: it contains more than {_limits.MaxFiles} metadata entries");
            }
        }

        private static void EnsureParentDirectory(string fullPath)
        {
            var directory = Path.GetDirectoryName(fullPath);
            if (directory is not null)
            {
                CreateDirectory(directory);
            }
        }

        private static void CreateDirectory(string fullPath)
        {
            if (OperatingSystem.IsWindows())
            {
                Directory.CreateDirectory(fullPath);
            }
            else
            {
                Directory.CreateDirectory(fullPath, FileMode755);
            }
        }

        private void ApplyDirectoryModes()
        {
            if (OperatingSystem.IsWindows())
            {
                return;
            }

            // CreateDirectory's mode is filtered by the process umask; the bundle must be readable by the runtime user.
            foreach (var relative in _directories)
            {
                if (BundlePaths.Resolve(_root, relative) is { } fullPath)
                {
                    File.SetUnixFileMode(fullPath, FileMode755);
                }
            }
        }

        private BundleException PerFileLimit(string name) =>
            Rejected(name, $"is larger than the per-file limit of {_limits.MaxFileBytes} bytes");

        private BundleException TotalLimit() =>
            new($"bundle rejected: its files add up to more than the limit of {_limits.MaxTotalBytes} bytes");
    }

    private static async Task<T> ReadArchive<T>(Func<ValueTask<T>> read)
    {
        try
        {
            return await read().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is InvalidDataException or EndOfStreamException or FormatException or OverflowException
                                       or ArgumentException)
        {
            throw InvalidArchive(ex.Message, ex);
        }
    }

    private static BundleException Rejected(string name, string problem) =>
        new($"bundle rejected: entry '{Display(name)}' {problem}");

    private static BundleException InvalidArchive(string detail, Exception? inner = null) =>
        inner is null
            ? new BundleException($"bundle is not a valid tar.gz archive: {detail}")
            : new BundleException($"bundle is not a valid tar.gz archive: {detail}", inner);

    // Entry names come from the uploader and end up in logs and task output.
    private static string Display(string name)
    {
        const int maxLength = 200;
        var chars = name.Length > maxLength ? name[..maxLength] + "…" : name;
        return string.Create(chars.Length, chars, static (span, source) =>
        {
            for (var i = 0; i < source.Length; i++)
            {
                span[i] = char.IsControl(source[i]) ? '?' : source[i];
            }
        });
    }
}
