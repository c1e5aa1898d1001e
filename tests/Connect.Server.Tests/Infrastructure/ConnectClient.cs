using System.Net.Http.Json;
using System.Text;
using System.Text.Json.Nodes;

namespace Connect.Server.Tests.Infrastructure;

/// <summary>The publisher calls tests make over and over, spelled as the real clients send them.</summary>
public static class ConnectClient
{
    public static async Task<JsonObject> CreateContentAsync(this HttpClient client, string name, string accessType = "acl", JsonObject? extra = null)
    {
        var body = new JsonObject { ["name"] = name, ["access_type"] = accessType };
        foreach (var (k, v) in extra ?? [])
        {
            body[k] = v?.DeepClone();
        }
        using var response = await client.PostAsync("__api__/v1/content", Json(body));
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!;
    }

    public static async Task<JsonObject> PatchContentAsync(this HttpClient client, string guid, JsonObject body)
    {
        using var response = await client.PatchAsync($"__api__/v1/content/{guid}", Json(body));
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!;
    }

    public static async Task<string> UploadBundleAsync(this HttpClient client, string guid, byte[] bundle)
    {
        using var content = new ByteArrayContent(bundle);
        using var response = await client.PostAsync($"__api__/v1/content/{guid}/bundles", content);
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!["id"]!.GetValue<string>();
    }

    public static async Task<string> StartDeployAsync(this HttpClient client, string guid, string? bundleId)
    {
        using var response = await client.PostAsync($"__api__/v1/content/{guid}/deploy", Json(new JsonObject { ["bundle_id"] = bundleId }));
        await EnsureAsync(response);
        return (await response.Content.ReadFromJsonAsync<JsonObject>())!["task_id"]!.GetValue<string>();
    }

    /// <summary>Polls a task the way rsconnect does (first=last, wait=1) until it finishes; returns the final state and all output.</summary>
    public static async Task<(JsonObject Task, List<string> Output)> WaitForTaskAsync(this HttpClient client, string taskId, TimeSpan? timeout = null)
    {
        var output = new List<string>();
        var first = 0;
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromMinutes(3));
        while (DateTime.UtcNow < deadline)
        {
            var task = (await client.GetFromJsonAsync<JsonObject>($"__api__/v1/tasks/{taskId}?first={first}&wait=1"))!;
            output.AddRange(task["output"]!.AsArray().Select(l => l!.GetValue<string>()));
            first = task["last"]!.GetValue<int>();
            if (task["finished"]!.GetValue<bool>())
            {
                return (task, output);
            }
        }
        throw new TimeoutException($"task {taskId} did not finish; output so far:\n{string.Join('\n', output)}");
    }

    /// <summary>Upload + deploy + wait; asserts success and returns the bundle id.</summary>
    public static async Task<string> DeployAsync(this HttpClient client, string guid, byte[] bundle)
    {
        var bundleId = await client.UploadBundleAsync(guid, bundle);
        var (task, output) = await client.WaitForTaskAsync(await client.StartDeployAsync(guid, bundleId));
        Assert.True(task["code"]!.GetValue<int>() == 0, $"deploy failed: {task["error"]}\n{string.Join('\n', output)}");
        return bundleId;
    }

    public static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    private static async Task EnsureAsync(HttpResponseMessage response)
    {
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"{(int)response.StatusCode} {response.RequestMessage?.Method} {response.RequestMessage?.RequestUri}: {await response.Content.ReadAsStringAsync()}");
        }
    }
}
