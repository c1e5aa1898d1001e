namespace Connect.Core.Content;

public static class AccessTypes
{
    public const string All = "all";
    public const string LoggedIn = "logged_in";
    public const string Acl = "acl";

    public static bool IsValid(string value) => value is All or LoggedIn or Acl;
}
