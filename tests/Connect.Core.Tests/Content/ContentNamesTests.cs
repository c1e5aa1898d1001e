using Connect.Core.Content;

namespace Connect.Core.Tests.Content;

public sealed class ContentNamesTests
{
    [Theory]
    [InlineData("a")]
    [InlineData("my-app")]
    [InlineData("My_App_2")]
    [InlineData("0123456789012345678901234567890123456789012345678901234567890123")]
    public void Accepts_valid_names(string name) => Assert.True(ContentNames.IsValid(name));

    [Theory]
    [InlineData("")]
    [InlineData("01234567890123456789012345678901234567890123456789012345678901234")]
    [InlineData("my app")]
    [InlineData("my.app")]
    [InlineData("app/x")]
    [InlineData("café")]
    [InlineData("app\n")]
    public void Rejects_invalid_names(string name) => Assert.False(ContentNames.IsValid(name));
}
