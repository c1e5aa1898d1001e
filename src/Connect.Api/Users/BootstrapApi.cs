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
            if (header.RootElement.ValueKind != JsonValueKind.Object || Claim(header.RootElement, "alg") != "HS256")
            {
                return "alg must be HS256";
            }
            using var payload = JsonDocument.Parse(payloadBytes);
            var p = payload.RootElement;
            if (p.ValueKind != JsonValueKind.Object) return "malformed claims";
            if (Claim(p, "iss") != "rsconnect-python") return "iss must be rsconnect-python";
            if (Claim(p, "aud") != "rsconnect") return "aud must be rsconnect";
            if (Claim(p, "scope") != "bootstrap") return "scope must be bootstrap";
            if (!p.TryGetProperty("exp", out var exp)) return "exp is missing";
            if (NumericDate(exp) is not { } expires) return "exp is not a valid time (whole seconds since 1970)";
            if (expires < now) return "token expired";
            if (p.TryGetProperty("iat", out var iat))
            {
                if (NumericDate(iat) is not { } issued) return "iat is not a valid time (whole seconds since 1970)";
                if (issued > now.Add(ClockSkew)) return "token issued in the future";
            }
            if (p.TryGetProperty("nbf", out var nbf))
            {
                if (NumericDate(nbf) is not { } notBefore) return "nbf is not a valid time (whole seconds since 1970)";
                if (notBefore > now.Add(ClockSkew)) return "token not yet valid";
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException)
        {
            return "malformed claims";
        }
        return null;
    }

    // rsconnect's clock and the server's may differ a little; a token "from the future" beyond this is forged or broken.
    private static readonly TimeSpan ClockSkew = TimeSpan.FromMinutes(5);

    private static readonly long MinUnixSeconds = DateTimeOffset.MinValue.ToUnixTimeSeconds();
    private static readonly long MaxUnixSeconds = DateTimeOffset.MaxValue.ToUnixTimeSeconds();

    /// <summary>
    /// A JWT NumericDate as rsconnect writes it (PyJWT: whole seconds); null for anything else — strings, fractions,
    /// and values DateTimeOffset cannot hold (1e30, 99999999999999999999), which would otherwise throw.
    /// </summary>
    private static DateTimeOffset? NumericDate(JsonElement value) =>
        value.ValueKind == JsonValueKind.Number && value.TryGetInt64(out var seconds) && seconds >= MinUnixSeconds && seconds <= MaxUnixSeconds
            ? DateTimeOffset.FromUnixTimeSeconds(seconds)
            : null;

    private static string? Claim(JsonElement payload, string name) =>
        payload.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;

    private static byte[] Base64Url(string s)
    {
        var padded = s.Replace('-', '+').Replace('_', '/');
        padded += (padded.Length % 4) switch { 2 => "==", 3 => "=", 0 => "", _ => throw new FormatException() };
        return Convert.FromBase64String(padded);
    }
}
