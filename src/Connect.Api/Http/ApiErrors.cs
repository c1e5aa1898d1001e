using Microsoft.AspNetCore.Http;

namespace Connect.Api.Http;

/// <summary>
/// Connect's error shape, <c>{"code": n, "error": "...", "payload": null}</c>: rsconnect prints <c>error</c>,
/// posit-sdk reads <c>code</c> and <c>error</c>, and rsconnect treats code 30 on v1/user as "key not valid".
/// </summary>
public static class ApiErrors
{
    public const int Internal = 1;
    public const int UnknownEndpoint = 2;
    public const int InvalidId = 3;
    public const int NotFound = 4;
    public const int InvalidName = 5;
    public const int NotPermitted = 10;
    public const int BadRequest = 12;
    public const int Conflict = 15;
    public const int Unauthenticated = 21;
    public const int InvalidApiKey = 30;

    public sealed record ErrorBody(int Code, string Error, object? Payload);

    public static IResult Error(int status, int code, string message) =>
        TypedResults.Json(new ErrorBody(code, message, null), ApiJson.Options, statusCode: status);

    public static IResult NotFoundError(string what) => Error(StatusCodes.Status404NotFound, NotFound, $"The requested {what} does not exist.");

    public static IResult BadRequestError(string message) => Error(StatusCodes.Status400BadRequest, BadRequest, message);

    public static IResult Forbidden(string message = "You do not have permission to perform this operation.") =>
        Error(StatusCodes.Status403Forbidden, NotPermitted, message);

    public static IResult Unauthorized() =>
        Error(StatusCodes.Status401Unauthorized, Unauthenticated, "This request needs an API key (Authorization: Key <key>).");

    public static IResult InvalidKey() => Error(StatusCodes.Status401Unauthorized, InvalidApiKey, "The specified API key is not valid.");
}
