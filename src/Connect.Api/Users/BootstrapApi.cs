using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Connect.Api.Auth;
using Connect.Api.Http;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Connect.Data;
using Connect.Data.Security;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Connect.Api.Users;

/// <summary>
/// <c>POST /__api__/v1/experimental/bootstrap</c> (spec §1.11): on a server with no users, a JWT signed with
/// the bootstrap secret (HS256; iss rsconnect-python, aud rsconnect, scope bootstrap, unexpired) creates the
/// first administrator and returns its API key, once.
/// </summary>
public static class BootstrapApi
{
    public static RouteGroupBuilder MapBootstrapApi(this RouteGroupBuilder v1)
    {
        v1.MapPost("/experimental/bootstrap", Bootstrap).AddEndpointFilter(ApiAuth.RefuseScoped);
        return v1;
    }

    private static async Task<IResult> Bootstrap(HttpContext context, ICatalogStore store, IOptions<BootstrapOptions> options, TimeProvider time)
    {
        var secret = BootstrapSecret.Read(options.Value);
        if (!options.Value.Enabled || secret is null)
        {
            return ApiErrors.Error(StatusCodes.Status404NotFound, ApiErrors.UnknownEndpoint, "Bootstrap is not enabled on this server.");
        }
        var header = context.Request.Headers.Authorization.ToString();
        const string scheme = "Connect-Bootstrap ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            return ApiErrors.Error(StatusCodes.Status401Unauthorized, ApiErrors.Unauthenticated, "Bootstrap needs 'Authorization: Connect-Bootstrap <token>'.");
        }
        var problem = BootstrapToken.Validate(header[scheme.Length..].Trim(), secret, time.GetUtcNow());
        if (problem is not null)
        {
            return ApiErrors.Error(StatusCodes.Status401Unauthorized, ApiErrors.Unauthenticated, "Invalid bootstrap token: " + problem);
        }
        var key = ApiKeys.Generate();
        var admin = await store.BootstrapAdministratorAsync(new NewUser("admin", UserRoles.Administrator, time.GetUtcNow()), "bootstrap", ApiKeys.Hash(key), context.RequestAborted);
        if (admin is null)
        {
            return ApiErrors.Error(StatusCodes.Status403Forbidden, ApiErrors.NotPermitted, "This server already has users: bootstrap is only possible on a new server.");
        }
        return TypedResults.Json(new { api_key = key }, ApiJson.Options);
    }
}

public static class BootstrapSecret
{
    public const string EnvironmentVariable = "CONNECT_BOOTSTRAP_SECRETKEY";

    /// <summary>The bootstrap signing secret from the configured file or the environment; null when neither is set.</summary>
    public static byte[]? Read(BootstrapOptions options)
    {
        var text = options.SecretKeyFile is { } file && File.Exists(file)
            ? File.ReadAllText(file)
            : Environment.GetEnvironmentVariable(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(text))
        {
            return null;
        }
        try
        {
            var bytes = Convert.FromBase64String(text.Trim());
            return bytes.Length >= 32 ? bytes : null;
        }
        catch (FormatException)
        {
            return null;
        }
    }
}

public static class BootstrapToken
{
    /// <summary>Null when the token is valid; otherwise why not.</summary>
    public static string? Validate(string token, byte[] secret, DateTimeOffset now)
    {
        var parts = token.Split('.');
        if (parts.Length != 3)
        {
            return "not a JWT";
        }
        byte[] headerBytes, payloadBytes, signature;
        try
        {
            headerBytes = Base64Url(parts[0]);
            payloadBytes = Base64Url(parts[1]);
            signature = Base64Url(parts[2]);
        }
        catch (FormatException)
        {
            return "not a JWT";
        }
        var expected = HMACSHA256.HashData(secret, Encoding.ASCII.GetBytes(parts[0] + "." + parts[1]));
        if (!CryptographicOperations.FixedTimeEquals(expected, signature))
        {
            return "bad signature";
        }
        try
        {
            using var header = JsonDocument.Parse(headerBytes);
            if (!header.RootElement.TryGetProperty("alg", out var alg) || alg.GetString() != "HS256")
            {
                return "alg must be HS256";
            }
            using var payload = JsonDocument.Parse(payloadBytes);
            var p = payload.RootElement;
            if (Claim(p, "iss") != "rsconnect-python") return "iss must be rsconnect-python";
            if (Claim(p, "aud") != "rsconnect") return "aud must be rsconnect";
            if (Claim(p, "scope") != "bootstrap") return "scope must be bootstrap";
            if (!p.TryGetProperty("exp", out var exp) || !exp.TryGetInt64(out var expSeconds)) return "exp is missing";
            if (DateTimeOffset.FromUnixTimeSeconds(expSeconds) < now) return "token expired";
            if (p.TryGetProperty("iat", out var iat) && iat.TryGetInt64(out var iatSeconds) && DateTimeOffset.FromUnixTimeSeconds(iatSeconds) > now.AddMinutes(5))
                return "token issued in the future";
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return "malformed claims";
        }
        return null;
    }

    private static string? Claim(JsonElement payload, string name) =>
        payload.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static byte[] Base64Url(string s)
    {
        var padded = s.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", 0 => "", _ => throw new FormatException() };
        return Convert.FromBase64String(padded);
    }
}
