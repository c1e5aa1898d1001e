using System.Text;

namespace Connect.Core.Content;

public static class ContentNames
{
    public const int MaxLength = 64;

    /// <summary>Shortest name the server makes up; Connect's UI rejects shorter ones.</summary>
    public const int MinGeneratedLength = 3;

    /// <summary>Connect content names: 1 to 64 ASCII letters, digits, '_' or '-'.</summary>
    public static bool IsValid(string name)
    {
        if (string.IsNullOrEmpty(name) || name.Length > MaxLength)
        {
            return false;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c != '_' && c != '-')
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A name derived from <paramref name="title"/> for clients that leave the name to the server (Posit Publisher
    /// sends <c>"name": ""</c>): lower case, every run of other characters one '-'. Null when too little of the
    /// title survives to make a name of <see cref="MinGeneratedLength"/> characters.
    /// </summary>
    public static string? FromTitle(string? title)
    {
        if (string.IsNullOrWhiteSpace(title))
        {
            return null;
        }
        var name = new StringBuilder(MaxLength);
        foreach (var c in title)
        {
            if (name.Length == MaxLength)
            {
                break;
            }
            if (char.IsAsciiLetterOrDigit(c) || c == '_')
            {
                name.Append(char.ToLowerInvariant(c));
            }
            else if (name.Length > 0 && name[^1] != '-')
            {
                name.Append('-');
            }
        }
        var result = name.ToString().TrimEnd('-');
        return result.Length >= MinGeneratedLength ? result : null;
    }

    /// <summary>A fresh name when there is no title to derive one from: <c>content-</c> and 8 random hex digits.</summary>
    public static string Generate() => "content-" + ShortId();

    /// <summary><paramref name="name"/> made distinct by a random suffix, shortened so the result still fits.</summary>
    public static string WithRandomSuffix(string name)
    {
        var suffix = "-" + ShortId();
        var room = MaxLength - suffix.Length;
        return (name.Length > room ? name[..room].TrimEnd('-') : name) + suffix;
    }

    private static string ShortId() => Guid.NewGuid().ToString("N")[..8];
}
