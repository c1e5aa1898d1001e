using System.Security.Cryptography;
using System.Text;

namespace Connect.Data.Security;

/// <summary>
/// API keys are 32 random bytes, shown to their owner once. Only a SHA-256 digest is stored: the keys have
/// full entropy, so a fast digest is as safe as a slow password hash and costs nothing per request.
/// </summary>
public static class ApiKeys
{
    public static string Generate() => Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(32));

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
