using System.Text.Json;
using System.Text.Json.Serialization;
using Connect.Core.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

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
    public static async Task<(JsonElement Body, IResult? Error)> ReadObjectAsync(HttpRequest request, bool allowEmpty = false)
    {
        var (document, error) = await ReadDocumentAsync(request, allowEmpty);
        if (document is null)
        {
            return (default, error);
        }
        using (document)
        {
            if (document.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (default, ApiErrors.BadRequestError("The request body must be a JSON object."));
            }
            return (document.RootElement.Clone(), null);
        }
    }

    /// <summary>
    /// Reads a whole JSON body, at most <c>Connect:MaxJsonBodyBytes</c> (413 beyond), that is valid UTF-8 and valid JSON
    /// whose every string decodes (400 otherwise); an empty body reads as <c>{}</c> when <paramref name="allowEmpty"/>.
    /// </summary>
    public static async Task<(JsonDocument? Document, IResult? Error)> ReadDocumentAsync(HttpRequest request, bool allowEmpty = false)
    {
        var max = request.HttpContext.RequestServices.GetService<IOptions<ConnectOptions>>()?.Value.MaxJsonBodyBytes ?? new ConnectOptions().MaxJsonBodyBytes;
        var bytes = await ReadCappedAsync(request, max);
        if (bytes.AsSpan().Trim(" \t\r\n"u8).IsEmpty)
        {
            return allowEmpty
                ? (JsonDocument.Parse("{}"), null)
                : (null, ApiErrors.BadRequestError("The request body is empty; a JSON object is required."));
        }
        // Checked up front: System.Text.Json only notices bad UTF-8 when a string is read, which would be a 500 later.
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            return (null, ApiErrors.BadRequestError("The request body is not valid UTF-8."));
        }
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(bytes, new JsonDocumentOptions { MaxDepth = 64 });
        }
        catch (JsonException e)
        {
            return (null, ApiErrors.BadRequestError("The request body is not valid JSON: " + e.Message));
        }
        if (!StringsDecode(document.RootElement))
        {
            document.Dispose();
            return (null, ApiErrors.BadRequestError("The request body contains a string that is not valid Unicode (an unpaired surrogate escape)."));
        }
        return (document, null);
    }

    private static async Task<byte[]> ReadCappedAsync(HttpRequest request, long max)
    {
        // Kestrel enforces the same cap (see UseConnectApiBadInput); this also covers hosts without that feature.
        if (request.ContentLength > max)
        {
            throw BodyTooLarge(max);
        }
        using var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        int read;
        while ((read = await request.Body.ReadAsync(chunk, request.HttpContext.RequestAborted)) > 0)
        {
            if (buffer.Length + read > max)
            {
                throw BodyTooLarge(max);
            }
            buffer.Write(chunk, 0, read);
        }
        return buffer.ToArray();
    }

    internal static BadHttpRequestException BodyTooLarge(long max) =>
        new($"The request body is larger than this server's limit of {max} bytes for JSON requests.", StatusCodes.Status413PayloadTooLarge);

    // An escaped lone surrogate ("\ud800") is valid JSON syntax but throws when read as a .NET string.
    private static bool StringsDecode(JsonElement element)
    {
        try
        {
            Walk(element);
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }

        static void Walk(JsonElement e)
        {
            switch (e.ValueKind)
            {
                case JsonValueKind.String:
                    _ = e.GetString();
                    break;
                case JsonValueKind.Array:
                    foreach (var item in e.EnumerateArray())
                    {
                        Walk(item);
                    }
                    break;
                case JsonValueKind.Object:
                    foreach (var property in e.EnumerateObject())
                    {
                        _ = property.Name;
                        Walk(property.Value);
                    }
                    break;
            }
        }
    }
}
