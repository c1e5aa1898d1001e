using System.Runtime.InteropServices;

namespace Connect.Runtime.Sandbox;

/// <summary>
/// What content wrote and the server will serve or mount as root (render output, a built environment) is taken back
/// from it: links, sockets, pipes and devices are removed (the front end would follow a link to any host file), and
/// the rest is owned by root and read-only to everyone else, so content can no longer change it.
/// </summary>
public static partial class ContentOutput
{
    private const UnixFileMode FileMode = UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.OtherRead;
    private const UnixFileMode ExecutableMode = FileMode | UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute;
    private const UnixFileMode DirectoryMode = ExecutableMode;

    /// <summary>Seals <paramref name="directory"/>; returns how many entries were removed as unsafe.</summary>
    /// <param name="keepLinks">Keep links (an environment's bin/python is one): for trees that are only ever mounted into a
    /// sandbox, where a link resolves inside it, never read by the server.</param>
    public static int Seal(string directory, bool takeOwnership, bool keepLinks = false)
    {
        var root = new DirectoryInfo(directory);
        if (root.LinkTarget is not null)
        {
            throw new IOException($"{directory} is a link");
        }
        var removed = SealDirectory(root, takeOwnership, keepLinks);
        Finish(root.FullName, DirectoryMode, takeOwnership);
        return removed;
    }

    /// <summary>Makes one directory (not its entries) root's and 0755: content can no longer add, rename or remove entries.</summary>
    public static void TakeDirectory(string directory, bool takeOwnership)
    {
        if (new DirectoryInfo(directory).LinkTarget is not null)
        {
            throw new IOException($"{directory} is a link");
        }
        Finish(directory, DirectoryMode, takeOwnership);
    }

    private static int SealDirectory(DirectoryInfo directory, bool takeOwnership, bool keepLinks)
    {
        var removed = 0;
        foreach (var entry in directory.EnumerateFileSystemInfos("*", new EnumerationOptions { AttributesToSkip = 0, RecurseSubdirectories = false, IgnoreInaccessible = false }))
        {
            if (entry.LinkTarget is not null && keepLinks)
            {
                if (takeOwnership && Lchown(entry.FullName, 0, 0) != 0)
                {
                    throw new IOException($"chown {entry.FullName} to root failed (errno {Marshal.GetLastPInvokeError()})");
                }
            }
            else if (entry.LinkTarget is not null)
            {
                // A link is removed, never followed: File.Delete unlinks the link itself.
                File.Delete(entry.FullName);
                removed++;
            }
            else if (entry is DirectoryInfo sub)
            {
                removed += SealDirectory(sub, takeOwnership, keepLinks);
                Finish(sub.FullName, DirectoryMode, takeOwnership);
            }
            else if (IsRegularFile(entry.FullName))
            {
                var executable = !OperatingSystem.IsWindows() && (File.GetUnixFileMode(entry.FullName) & UnixFileMode.UserExecute) != 0;
                Finish(entry.FullName, executable ? ExecutableMode : FileMode, takeOwnership);
            }
            else
            {
                File.Delete(entry.FullName);
                removed++;
            }
        }
        return removed;
    }

    private static void Finish(string path, UnixFileMode mode, bool takeOwnership)
    {
        if (takeOwnership && Lchown(path, 0, 0) != 0)
        {
            throw new IOException($"chown {path} to root failed (errno {Marshal.GetLastPInvokeError()})");
        }
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(path, mode);
        }
    }

    /// <summary>S_ISREG of lstat(2): not a link, socket, pipe or device.</summary>
    internal static bool IsRegularFile(string path) => FileType(path) == 0x8000;

    /// <summary>S_ISSOCK of lstat(2).</summary>
    public static bool IsSocket(string path) => FileType(path) == 0xC000;

    /// <summary>The S_IFMT bits of lstat(2), or -1.</summary>
    private static int FileType(string path)
    {
        var buffer = new byte[256];
        if (Lstat(path, buffer) != 0)
        {
            return -1;
        }
        // st_mode sits after st_dev, st_ino (and on x86_64 st_nlink) in glibc's struct stat.
        var offset = RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 24,
            Architecture.Arm64 => 16,
            _ => throw new PlatformNotSupportedException("lstat layout unknown for " + RuntimeInformation.ProcessArchitecture),
        };
        return BitConverter.ToInt32(buffer, offset) & 0xF000;
    }

    [LibraryImport("libc", EntryPoint = "lstat", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Lstat(string path, byte[] buffer);

    [LibraryImport("libc", EntryPoint = "lchown", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    private static partial int Lchown(string path, int uid, int gid);
}
