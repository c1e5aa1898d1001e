using System.Security.Cryptography;
using System.Text;

namespace Connect.Data.Security;

/// <summary>
/// Encrypts content environment variables at rest with AES-256-GCM. The key lives in a file of the data
/// directory (created 0600 on first start) or comes from configuration, so a copied database alone reveals nothing.
/// Layout of a sealed value: version byte (1) | 12-byte nonce | 16-byte tag | ciphertext.
/// </summary>
public sealed class SecretBox
{
    private const byte FormatVersion = 1;
    private readonly byte[] _key;

    public SecretBox(byte[] key)
    {
        if (key.Length != 32)
        {
            throw new ArgumentException("the secret key must be 32 bytes", nameof(key));
        }
        _key = key;
    }

    public static SecretBox FromKeyFile(string path) => new(KeyFile.ReadOrCreate(path, 32));

    public byte[] Seal(string plaintext)
    {
        var data = Encoding.UTF8.GetBytes(plaintext);
        var output = new byte[1 + 12 + 16 + data.Length];
        output[0] = FormatVersion;
        var nonce = output.AsSpan(1, 12);
        RandomNumberGenerator.Fill(nonce);
        using var gcm = new AesGcm(_key, 16);
        gcm.Encrypt(nonce, data, output.AsSpan(29), output.AsSpan(13, 16));
        return output;
    }

    public string Open(byte[] sealedValue)
    {
        if (sealedValue.Length < 29 || sealedValue[0] != FormatVersion)
        {
            throw new CryptographicException("not a sealed value of a known format");
        }
        var plain = new byte[sealedValue.Length - 29];
        using var gcm = new AesGcm(_key, 16);
        gcm.Decrypt(sealedValue.AsSpan(1, 12), sealedValue.AsSpan(29), sealedValue.AsSpan(13, 16), plain);
        return Encoding.UTF8.GetString(plain);
    }
}
