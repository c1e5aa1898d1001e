using Connect.Data.Security;

namespace Connect.Data.Tests;

public sealed class ApiKeysTests
{
    private static bool IsLowerHex(string s) => s.All(c => c is >= '0' and <= '9' or >= 'a' and <= 'f');

    [Fact]
    public void Generate_Gives64HexChars()
    {
        var key = ApiKeys.Generate();

        Assert.Equal(64, key.Length);
        Assert.True(IsLowerHex(key), key);
    }

    [Fact]
    public void Generate_IsUnique()
    {
        var keys = Enumerable.Range(0, 1000).Select(_ => ApiKeys.Generate()).ToList();
        Assert.Equal(keys.Count, keys.Distinct(StringComparer.Ordinal).Count());
    }

    [Fact]
    public void Hash_IsDeterministicHexAndDiffersFromTheKey()
    {
        var key = ApiKeys.Generate();

        var hash = ApiKeys.Hash(key);

        Assert.Equal(hash, ApiKeys.Hash(key));
        Assert.Equal(64, hash.Length);
        Assert.True(IsLowerHex(hash), hash);
        Assert.NotEqual(key, hash);
        Assert.NotEqual(hash, ApiKeys.Hash(ApiKeys.Generate()));
        Assert.NotEqual(hash, ApiKeys.Hash(key.ToUpperInvariant()));
    }

    [Fact]
    public void Hash_IsSha256OfTheUtf8Key()
    {
        // FIPS 180-2 test vector: a stored digest must stay valid across releases.
        Assert.Equal("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", ApiKeys.Hash("abc"));
        Assert.Equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", ApiKeys.Hash(""));
    }
}
