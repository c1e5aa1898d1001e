using System.Buffers;
using System.Security.Cryptography;
using Connect.Abstractions;
using Connect.Api.Auth;
using Connect.Api.Http;
using System.Text.Json;
using Connect.Core.Hosting;
using Connect.Core.Model;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Net.Http.Headers;
using Connect.Data;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace Connect.Api.Content;

/// <summary><c>/__api__/v1/content/{guid}/bundles</c>: upload, list, get, download, delete (spec §3.2).</summary>
public static class BundleApi
{
    public static RouteGroupBuilder MapBundleApi(this RouteGroupBuilder v1)
    {
        var bundles = v1.MapGroup("/content/{guid}/bundles").AddEndpointFilter(ApiAuth.RequireUser);
        bundles.MapPost("", Upload);
        bundles.MapGet("", List);
        bundles.MapGet("/{id}", Get);
        bundles.MapGet("/{id}/download", Download);
        bundles.MapDelete("/{id}", Delete);
        return v1;
    }

    private static async Task<IResult> Upload(HttpContext context, ICatalogStore store, DataPaths paths, IOptions<ConnectOptions> options, TimeProvider time, string guid)
    {
        var (item, caller, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        // Kestrel's default 30 MB request cap is replaced by Connect:MaxBundleBytes, enforced while streaming.
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } limit)
        {
            limit.MaxRequestBodySize = null;
        }
        var max = options.Value.MaxBundleBytes;
        var tooLarge = ApiErrors.Error(StatusCodes.Status413PayloadTooLarge, ApiErrors.BadRequest, $"The bundle is larger than this server's limit of {max} bytes.");
        if (context.Request.ContentLength > max + MaxMetadataBytes)
        {
            return tooLarge;
        }

        // Posit Publisher sends the base64 MD5 of the body it meant to send; checked before anything is kept, so a
        // body damaged in transit (or by a proxy) never becomes a bundle.
        byte[]? expectedMd5 = null;
        if (context.Request.Headers.TryGetValue(ContentChecksumHeader, out var checksumHeader))
        {
            expectedMd5 = ParseChecksum(checksumHeader.ToString());
            if (expectedMd5 is null)
            {
                return ApiErrors.BadRequestError($"The {ContentChecksumHeader} header must be the base64 MD5 of the request body.");
            }
        }

        Directory.CreateDirectory(paths.Uploads);
        var temp = Path.Combine(paths.Uploads, Guid.NewGuid().ToString("N") + ".part");
        var multipart = false;
        HashingReadStream? bodyHash = null;
        try
        {
            Received? received;
            var source = BundleSource.None;
            if (MediaTypeHeaderValue.TryParse(context.Request.ContentType, out var type) && type.MediaType.Equals("multipart/form-data", StringComparison.OrdinalIgnoreCase))
            {
                // rsconnect sends multipart (parts "archive" and "metadata") for git deploys and --metadata.
                multipart = true;
                var boundary = HeaderUtilities.RemoveQuotes(type.Boundary).Value;
                if (string.IsNullOrEmpty(boundary))
                {
                    return ApiErrors.BadRequestError("The multipart body has no boundary.");
                }
                // The checksum covers the whole multipart body, not the archive part, so the raw stream is hashed as well.
                bodyHash = expectedMd5 is not null ? new HashingReadStream(context.Request.Body, HashAlgorithmName.MD5) : null;
                received = null;
                var sawArchive = false;
                var reader = new MultipartReader(boundary, (Stream?)bodyHash ?? context.Request.Body);
                while (await reader.ReadNextSectionAsync(context.RequestAborted) is { } section)
                {
                    var name = ContentDispositionHeaderValue.TryParse(section.ContentDisposition, out var disposition)
                        ? HeaderUtilities.RemoveQuotes(disposition.Name).Value
                        : null;
                    if (name == "archive" && !sawArchive)
                    {
                        sawArchive = true;
                        received = await ReceiveAsync(section.Body, temp, max, context.RequestAborted);
                        if (received is null)
                        {
                            return tooLarge;
                        }
                    }
                    else if (name == "metadata")
                    {
                        var (parsed, problem) = await ReadSourceAsync(section.Body, context.RequestAborted);
                        if (problem is not null)
                        {
                            return ApiErrors.BadRequestError(problem);
                        }
                        source = parsed;
                    }
                }
                if (!sawArchive)
                {
                    return ApiErrors.BadRequestError("The multipart body has no \"archive\" part.");
                }
                if (bodyHash is not null)
                {
                    // The reader stops at the closing boundary; the checksum also covers any epilogue after it.
                    await bodyHash.CopyToAsync(Stream.Null, context.RequestAborted);
                }
            }
            else
            {
                received = await ReceiveAsync(context.Request.Body, temp, max, context.RequestAborted);
                if (received is null)
                {
                    return tooLarge;
                }
            }
            if (expectedMd5 is not null)
            {
                var actual = bodyHash is not null ? bodyHash.GetHashAndReset() : Convert.FromHexString(received!.Md5);
                if (!CryptographicOperations.FixedTimeEquals(actual, expectedMd5))
                {
                    return ApiErrors.BadRequestError(
                        $"The request body does not match its {ContentChecksumHeader} header (received MD5 {Convert.ToBase64String(actual)}); the bundle was not kept.");
                }
            }
            if (!received!.LooksLikeArchive)
            {
                return ApiErrors.BadRequestError("The bundle must be a tar.gz archive (the body is neither gzip nor tar).");
            }
            var bundle = await store.AddBundleAsync(new NewBundle(item!.Guid, caller.Guid, received.Size, received.Md5, received.Sha1, time.GetUtcNow()) { Source = source },
                context.RequestAborted);
            var target = paths.BundleArchive(item.Guid, bundle.Id);
            try
            {
                Directory.CreateDirectory(Path.GetDirectoryName(target)!);
                File.Move(temp, target);
            }
            catch
            {
                // The row without its file would be a bundle that can never deploy: take it back.
                await store.DeleteBundleAsync(item.Guid, bundle.Id, CancellationToken.None);
                throw;
            }
            return TypedResults.Json(BundleJson.From(bundle, item.BundleId), ApiJson.Options);
        }
        catch (Exception e) when (multipart && e is IOException or InvalidDataException && !context.RequestAborted.IsCancellationRequested)
        {
            return ApiErrors.BadRequestError("The multipart body is malformed: " + e.Message);
        }
        finally
        {
            bodyHash?.Dispose();
            if (File.Exists(temp))
            {
                File.Delete(temp);
            }
        }
    }

    private const int MaxMetadataBytes = 64 * 1024;

    private const string ContentChecksumHeader = "X-Content-Checksum";

    /// <summary>The 16 MD5 bytes of a base64 header value; null when it is not base64 of 16 bytes.</summary>
    private static byte[]? ParseChecksum(string value)
    {
        var bytes = new byte[MD5.HashSizeInBytes];
        return Convert.TryFromBase64String(value.Trim(), bytes, out var written) && written == bytes.Length ? bytes : null;
    }

    private sealed record Received(long Size, string Md5, string Sha1, bool LooksLikeArchive);

    /// <summary>Streams an archive to <paramref name="temp"/>, hashing it on the way; null when it exceeds <paramref name="max"/> bytes.</summary>
    private static async Task<Received?> ReceiveAsync(Stream body, string temp, long max, CancellationToken ct)
    {
        long size = 0;
        using var md5 = IncrementalHash.CreateHash(HashAlgorithmName.MD5);
        using var sha1 = IncrementalHash.CreateHash(HashAlgorithmName.SHA1);
        var head = new byte[512 + 8];
        var headLength = 0;
        await using var file = new FileStream(temp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 81920, useAsync: true);
        var buffer = ArrayPool<byte>.Shared.Rent(81920);
        try
        {
            int read;
            while ((read = await body.ReadAsync(buffer, ct)) > 0)
            {
                size += read;
                if (size > max)
                {
                    return null;
                }
                if (headLength < head.Length)
                {
                    var n = Math.Min(read, head.Length - headLength);
                    Array.Copy(buffer, 0, head, headLength, n);
                    headLength += n;
                }
                md5.AppendData(buffer, 0, read);
                sha1.AppendData(buffer, 0, read);
                await file.WriteAsync(buffer.AsMemory(0, read), ct);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
        return new Received(size, Convert.ToHexStringLower(md5.GetHashAndReset()), Convert.ToHexStringLower(sha1.GetHashAndReset()),
            LooksLikeArchive(head.AsSpan(0, headLength)));
    }

    /// <summary>The "metadata" part: a JSON object whose source fields describe where the files came from.</summary>
    private static async Task<(BundleSource Source, string? Problem)> ReadSourceAsync(Stream body, CancellationToken ct)
    {
        using var limited = new MemoryStream();
        var buffer = new byte[8192];
        int read;
        while ((read = await body.ReadAsync(buffer, ct)) > 0)
        {
            if (limited.Length + read > MaxMetadataBytes)
            {
                return (BundleSource.None, $"The metadata part is larger than {MaxMetadataBytes} bytes.");
            }
            limited.Write(buffer, 0, read);
        }
        try
        {
            using var doc = JsonDocument.Parse(limited.ToArray());
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                return (BundleSource.None, "The metadata part must be a JSON object.");
            }
            string? Field(string name) => doc.RootElement.TryGetProperty(name, out var v) && v.ValueKind == JsonValueKind.String ? v.GetString() : null;
            return (new BundleSource(Field("source"), Field("source_repo"), Field("source_branch"), Field("source_commit")), null);
        }
        catch (JsonException e)
        {
            return (BundleSource.None, "The metadata part is not valid JSON: " + e.Message);
        }
    }

    private static bool LooksLikeArchive(ReadOnlySpan<byte> head)
    {
        var gzip = head.Length >= 2 && head[0] == 0x1f && head[1] == 0x8b;
        var tar = head.Length >= 262 && head.Slice(257, 5).SequenceEqual("ustar"u8);
        return gzip || tar;
    }

    private static async Task<IResult> List(HttpContext context, ICatalogStore store, string guid)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        var bundles = await store.ListBundlesAsync(item!.Guid, context.RequestAborted);
        return TypedResults.Json(bundles.OrderByDescending(b => b.Id).Select(b => BundleJson.From(b, item.BundleId)).ToArray(), ApiJson.Options);
    }

    private static async Task<IResult> Get(HttpContext context, ICatalogStore store, string guid, string id)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        var bundle = long.TryParse(id, out var bundleId) ? await store.GetBundleAsync(item!.Guid, bundleId, context.RequestAborted) : null;
        return bundle is null ? ApiErrors.NotFoundError("bundle") : TypedResults.Json(BundleJson.From(bundle, item!.BundleId), ApiJson.Options);
    }

    private static async Task<IResult> Download(HttpContext context, ICatalogStore store, DataPaths paths, string guid, string id)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        var bundle = long.TryParse(id, out var bundleId) ? await store.GetBundleAsync(item!.Guid, bundleId, context.RequestAborted) : null;
        var path = bundle is null ? null : paths.BundleArchive(item!.Guid, bundle.Id);
        if (path is null || !File.Exists(path))
        {
            return ApiErrors.NotFoundError("bundle");
        }
        return TypedResults.PhysicalFile(path, "application/gzip", $"bundle-{bundle!.Id}.tar.gz");
    }

    private static async Task<IResult> Delete(HttpContext context, ICatalogStore store, IGrainFactory grains, string guid, string id)
    {
        var (item, _, error) = await ContentLookup.LoadAsync(context, store, guid, edit: true);
        if (error is not null)
        {
            return error;
        }
        if (!long.TryParse(id, out var bundleId) || await store.GetBundleAsync(item!.Guid, bundleId, context.RequestAborted) is null)
        {
            return ApiErrors.NotFoundError("bundle");
        }
        try
        {
            await grains.GetGrain<IContentGrain>(item.Guid).DeleteBundleAsync(bundleId);
        }
        catch (ContentConflictException e)
        {
            return ApiErrors.BadRequestError(char.ToUpperInvariant(e.Message[0]) + e.Message[1..] + ".");
        }
        catch (ContentNotFoundException)
        {
            return ApiErrors.NotFoundError("content");
        }
        return TypedResults.NoContent();
    }
}
