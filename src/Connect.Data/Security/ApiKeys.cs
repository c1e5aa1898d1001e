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

    /// <summary>
    /// The name of the key a content process gets as CONNECT_API_KEY: scoped to its item, it acts as the item's
    /// owner there (and nowhere else) for the process's lifetime, and is deleted when the process ends.
    /// </summary>
    public static string ProcessKeyName(string jobKey) => ProcessKeyPrefix + jobKey;

    public const string ProcessKeyPrefix = "content-process:";

    public static string Hash(string key) => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(key)));
}
