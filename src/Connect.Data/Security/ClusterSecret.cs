using System.Security.Cryptography;
using System.Text;

namespace Connect.Data.Security;

/// <summary>
/// The secret every node of a cluster shares. It authenticates the internal hop (a node forwarding a viewer's request
/// to the node running the process) and signs the session-pin cookies the front end issues, so that neither can be
/// forged from outside. Single node: a key file in the data directory, never needed by anyone else.
/// </summary>
public sealed class ClusterSecret
{
    private readonly byte[] _key;
    private readonly byte[] _hopToken;

    public ClusterSecret(byte[] key)
    {
        if (key.Length < 32)
        {
            throw new ArgumentException("the cluster secret must be at least 32 bytes", nameof(key));
        }
        _key = key;
        _hopToken = HMACSHA256.HashData(_key, "connect internal hop v1"u8);
        HopToken = Convert.ToBase64String(_hopToken);
    }

    public static ClusterSecret Load(string? configured, string keyFile) =>
        new(configured is not null ? Convert.FromBase64String(configured) : KeyFile.ReadOrCreate(keyFile, 32));

    /// <summary>The value of the internal hop's header: derived from the secret, useless to anyone without it.</summary>
    public string HopToken { get; }

    public bool IsHopToken(string? presented)
    {
        if (string.IsNullOrEmpty(presented))
        {
            return false;
        }
        Span<byte> decoded = stackalloc byte[64];
        return Convert.TryFromBase64String(presented, decoded, out var length)
            && CryptographicOperations.FixedTimeEquals(decoded[..length], _hopToken);
    }

    /// <summary><paramref name="value"/> followed by a dot and its MAC (URL- and cookie-safe).</summary>
    public string Sign(string purpose, string value) => value + "." + Mac(purpose, value);

    /// <summary>The value of a string made by <see cref="Sign"/> for the same purpose, or null if it was not.</summary>
    public string? Verify(string purpose, string? signed)
    {
        var dot = signed?.LastIndexOf('.') ?? -1;
        if (dot <= 0)
        {
            return null;
        }
        var value = signed![..dot];
        var expected = Encoding.ASCII.GetBytes(Mac(purpose, value));
        var presented = Encoding.ASCII.GetBytes(signed[(dot + 1)..]);
        return CryptographicOperations.FixedTimeEquals(expected, presented) ? value : null;
    }

    private string Mac(string purpose, string value)
    {
        var mac = HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(purpose + "\n" + value));
        return Convert.ToBase64String(mac, 0, 16).TrimEnd('=').Replace('+', '-').Replace('/', '_');
    }
}
