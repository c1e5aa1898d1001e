namespace Connect.Core.Content;

public static class ContentNames
{
    public const int MaxLength = 64;

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
}
