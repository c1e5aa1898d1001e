using System.Text.Json.Nodes;
using Connect.Api.Http;
using Connect.Core.Model;

namespace Connect.Api.Users;

public static class UserJson
{
    public static JsonObject From(UserInfo u) => new()
    {
        ["email"] = u.Email,
        ["username"] = u.Username,
        ["first_name"] = u.FirstName,
        ["last_name"] = u.LastName,
        ["user_role"] = u.Role,
        ["created_time"] = ApiJson.Time(u.CreatedTime),
        ["updated_time"] = ApiJson.Time(u.UpdatedTime),
        ["active_time"] = ApiJson.Time(u.ActiveTime),
        ["confirmed"] = u.Confirmed,
        ["locked"] = u.Locked,
        ["guid"] = u.Guid.ToString("D"),
    };
}
