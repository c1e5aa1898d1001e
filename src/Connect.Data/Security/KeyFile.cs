using System.Security.Cryptography;
using System.Text;

namespace Connect.Data.Security;

/// <summary>
/// A random key kept in a file (0600) on the data directory. Nodes of a cluster starting together on shared storage
/// must all end with the same key: the file is written whole under a temporary name and linked into place, which
/// fails if another node got there first; that node's key is then read. No node ever reads a half-written key.
/// </summary>
public static class KeyFile
{
    public static byte[] ReadOrCreate(string path, int bytes)
    {
        if (!File.Exists(path))
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
            var staging = $"{path}.tmp-{Guid.NewGuid():N}";
            var options = new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write };
            if (!OperatingSystem.IsWindows())
            {
                options.UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite;
            }
            try
            {
                using (var stream = new FileStream(path: staging, options))
                {
                    stream.Write(Encoding.ASCII.GetBytes(Convert.ToBase64String(RandomNumberGenerator.GetBytes(bytes))));
                    stream.Flush(flushToDisk: true);
                }
                // Without overwrite, a move is a link + unlink on Unix: it fails when the target exists.
                File.Move(staging, path, overwrite: false);
            }
            catch (IOException) when (File.Exists(path))
            {
                // Another node created it first: use theirs.
            }
            finally
            {
                File.Delete(staging);
            }
        }
        var key = Convert.FromBase64String(File.ReadAllText(path).Trim());
        if (key.Length < bytes)
        {
            throw new CryptographicException($"the key file {path} holds {key.Length} bytes; {bytes} are needed");
        }
        return key;
    }
}
