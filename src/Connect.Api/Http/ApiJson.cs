using System.Text.Json;
using System.Text.Json.Serialization;

namespace Connect.Api.Http;

public static class ApiJson
{
    /// <summary>Connect's wire style: snake_case names, nulls written out (clients read fields that may be null).</summary>
    public static readonly JsonSerializerOptions Options = new(JsonSerializerDefaults.Web)
    {
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        DictionaryKeyPolicy = null,
        DefaultIgnoreCondition = JsonIgnoreCondition.Never,
    };

    /// <summary>RFC 3339 in UTC, second precision, as Connect writes times.</summary>
    public static string? Time(DateTimeOffset? t) => t?.UtcDateTime.ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", System.Globalization.CultureInfo.InvariantCulture);

    public static string Id(long id) => id.ToString(System.Globalization.CultureInfo.InvariantCulture);

    /// <summary>Reads a JSON body as an object; null with an error result when the body is not a JSON object.</summary>
    public static async Task<(JsonElement Body, Microsoft.AspNetCore.Http.IResult? Error)> ReadObjectAsync(Microsoft.AspNetCore.Http.HttpRequest request, bool allowEmpty = false)
    {
        try
        {
            using var doc = await JsonDocument.ParseAsync(request.Body, default, request.HttpContext.RequestAborted);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (default, ApiErrors.BadRequestError("The request body must be a JSON object."));
            }
            return (doc.RootElement.Clone(), null);
        }
        catch (JsonException e)
        {
            if (allowEmpty && e.BytePositionInLine == 0 && e.LineNumber == 0)
            {
                using var empty = JsonDocument.Parse("{}");
                return (empty.RootElement.Clone(), null);
            }
            return (default, ApiErrors.BadRequestError("The request body is not valid JSON: " + e.Message));
        }
    }
}
