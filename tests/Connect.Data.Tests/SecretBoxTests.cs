using System.Security.Cryptography;
using Connect.Data.Security;

namespace Connect.Data.Tests;

public sealed class SecretBoxTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("connect-secretbox-tests-").FullName;

    private static SecretBox NewBox() => new(RandomNumberGenerator.GetBytes(32));

    [Theory]
    [InlineData("")]
    [InlineData("x")]
    [InlineData("postgres://user:secret@db:5432/app?sslmode=require")]
    [InlineData("ünïcödé ✓ 日本語 🚀")]
    [InlineData("line1\nline2\0after-nul")]
    public void SealThenOpen_RoundTrips(string plaintext)
    {
        var box = NewBox();

        var sealedValue = box.Seal(plaintext);

        Assert.Equal(plaintext, box.Open(sealedValue));
        Assert.Equal(1 + 12 + 16 + System.Text.Encoding.UTF8.GetByteCount(plaintext), sealedValue.Length);
    }

    [Fact]
    public void Open_LargeValue_RoundTrips()
    {
        var box = NewBox();
        var plaintext = new string('a', 100_000) + "ß";
        Assert.Equal(plaintext, box.Open(box.Seal(plaintext)));
    }

    [Fact]
    public void Seal_IsRandomized_AndDoesNotContainThePlaintext()
    {
        var box = NewBox();

        var a = box.Seal("same secret value");
        var b = box.Seal("same secret value");

        Assert.NotEqual(a, b);
        Assert.NotEqual(a.AsSpan(1, 12).ToArray(), b.AsSpan(1, 12).ToArray()); // fresh nonce
        Assert.Equal("same secret value", box.Open(a));
        Assert.Equal("same secret value", box.Open(b));
        Assert.DoesNotContain("same secret value", System.Text.Encoding.UTF8.GetString(a));
    }

    [Fact]
    public void Open_TamperedAnyByte_Throws()
    {
        var box = NewBox();
        var sealedValue = box.Seal("tamper me");

        for (var i = 0; i < sealedValue.Length; i++)
        {
            var tampered = (byte[])sealedValue.Clone();
            tampered[i] ^= 0x01;
            Assert.ThrowsAny<CryptographicException>(() => box.Open(tampered));
        }
        Assert.Equal("tamper me", box.Open(sealedValue));
    }

    [Fact]
    public void Open_TruncatedOrExtendedOrGarbage_Throws()
    {
        var box = NewBox();
        var sealedValue = box.Seal("value");

        Assert.ThrowsAny<CryptographicException>(() => box.Open(sealedValue[..^1]));
        Assert.ThrowsAny<CryptographicException>(() => box.Open([.. sealedValue, 0]));
        Assert.ThrowsAny<CryptographicException>(() => box.Open(sealedValue[..28]));
        Assert.ThrowsAny<CryptographicException>(() => box.Open([]));
        Assert.ThrowsAny<CryptographicException>(() => box.Open(new byte[64]));
    }

    [Fact]
    public void Open_WithTheWrongKey_Throws()
    {
        var sealedValue = NewBox().Seal("secret");
        Assert.ThrowsAny<CryptographicException>(() => NewBox().Open(sealedValue));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(16)]
    [InlineData(31)]
    [InlineData(33)]
    public void Constructor_RejectsKeysThatAreNot32Bytes(int length)
    {
        Assert.Throws<ArgumentException>(() => new SecretBox(new byte[length]));
    }

    [Fact]
    public void FromKeyFile_CreatesAPrivateFileOnFirstUse_AndReadsTheSameKeyBack()
    {
        var path = Path.Combine(_root, "nested", "dir", "secret.key");
        Assert.False(File.Exists(path));

        var first = SecretBox.FromKeyFile(path);

        Assert.True(File.Exists(path));
        if (!OperatingSystem.IsWindows())
        {
            Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(path));
        }
        var key = Convert.FromBase64String(File.ReadAllText(path).Trim());
        Assert.Equal(32, key.Length);

        var contents = File.ReadAllBytes(path);
        var second = SecretBox.FromKeyFile(path);
        Assert.Equal(contents, File.ReadAllBytes(path)); // not regenerated
        Assert.Equal("shared", second.Open(first.Seal("shared")));
        Assert.Equal("shared", first.Open(second.Seal("shared")));
        Assert.Equal("shared", new SecretBox(key).Open(first.Seal("shared")));
    }

    [Fact]
    public void FromKeyFile_UsesAnExistingKey()
    {
        var key = RandomNumberGenerator.GetBytes(32);
        var path = Path.Combine(_root, "configured.key");
        File.WriteAllText(path, Convert.ToBase64String(key) + "\n");

        var box = SecretBox.FromKeyFile(path);

        Assert.Equal("v", new SecretBox(key).Open(box.Seal("v")));
    }

    [Fact]
    public void FromKeyFile_DifferentFiles_DifferentKeys()
    {
        var a = SecretBox.FromKeyFile(Path.Combine(_root, "a.key"));
        var b = SecretBox.FromKeyFile(Path.Combine(_root, "b.key"));

        Assert.ThrowsAny<CryptographicException>(() => b.Open(a.Seal("x")));
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
