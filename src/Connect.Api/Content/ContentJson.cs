using System.Text.Json;
using System.Text.Json.Nodes;
using Connect.Abstractions;
using Connect.Core.Content;
using Connect.Core.Model;
using Connect.Api.Http;

namespace Connect.Api.Content;

/// <summary>The v1 content object, field for field as Posit clients read it (spec §3.1).</summary>
public static class ContentJson
{
    public static JsonObject From(ContentItem c, UserInfo? caller, string baseUrl, UserInfo? owner = null, IReadOnlySet<string>? include = null)
    {
        var s = c.Settings;
        var r = s.Runtime;
        var o = new JsonObject
        {
            ["guid"] = c.Guid.ToString("D"),
            ["id"] = ApiJson.Id(c.Id),
            ["name"] = s.Name,
            ["title"] = s.Title,
            ["description"] = s.Description,
            ["access_type"] = s.AccessType,
            ["locked"] = s.Locked,
            ["locked_message"] = s.LockedMessage,
            ["connection_timeout"] = r.ConnectionTimeout,
            ["read_timeout"] = r.ReadTimeout,
            ["init_timeout"] = r.InitTimeout,
            ["idle_timeout"] = r.IdleTimeout,
            ["max_processes"] = r.MaxProcesses,
            ["min_processes"] = r.MinProcesses,
            ["max_conns_per_process"] = r.MaxConnsPerProcess,
            ["load_factor"] = r.LoadFactor,
            ["memory_request"] = null,
            ["memory_limit"] = null,
            ["cpu_request"] = null,
            ["cpu_limit"] = null,
            ["amd_gpu_limit"] = null,
            ["nvidia_gpu_limit"] = null,
            ["service_account_name"] = null,
            ["default_image_name"] = null,
            ["default_environment_guid"] = null,
            ["default_r_environment_management"] = null,
            ["default_py_environment_management"] = null,
            ["created_time"] = ApiJson.Time(c.CreatedTime),
            ["last_deployed_time"] = ApiJson.Time(c.LastDeployedTime),
            ["bundle_id"] = c.BundleId is { } b ? ApiJson.Id(b) : null,
            ["app_mode"] = c.AppMode,
            ["content_category"] = c.ContentCategory,
            ["parameterized"] = false,
            ["cluster_name"] = "Local",
            ["image_name"] = null,
            ["environment_guid"] = null,
            ["r_version"] = null,
            ["py_version"] = c.PyVersion,
            ["quarto_version"] = null,
            ["node_version"] = null,
            ["r_environment_management"] = null,
            ["py_environment_management"] = c.PyVersion is null ? null : true,
            ["run_as"] = null,
            ["run_as_current_user"] = false,
            ["owner_guid"] = s.OwnerGuid.ToString("D"),
            ["content_url"] = PublicUrls.Content(baseUrl, c.Guid),
            ["dashboard_url"] = PublicUrls.Dashboard(baseUrl, c.Guid),
            ["app_role"] = ContentAccess.AppRole(c, caller),
        };
        if (include is not null)
        {
            if (include.Contains("owner"))
            {
                o["owner"] = owner is null ? null : new JsonObject
                {
                    ["guid"] = owner.Guid.ToString("D"),
                    ["username"] = owner.Username,
                    ["first_name"] = owner.FirstName,
                    ["last_name"] = owner.LastName,
                };
            }
            if (include.Contains("tags"))
            {
                o["tags"] = new JsonArray();
            }
            if (include.Contains("vanity_url"))
            {
                o["vanity_url"] = null;
            }
        }
        return o;
    }

    /// <summary>
    /// Adds <c>crash_loop</c> (a Connect clone extension): null, or since when the item's processes keep failing, how
    /// many failures fall in the window, the last error and when the next start may happen. Only the single-item
    /// responses carry it: a list would have to wake every item's grain.
    /// </summary>
    public static JsonObject WithCrashLoop(JsonObject o, CrashLoopState? crashLoop)
    {
        o["crash_loop"] = crashLoop is null ? null : new JsonObject
        {
            ["since"] = ApiJson.Time(crashLoop.Since),
            ["failures"] = crashLoop.Failures,
            ["last_error"] = crashLoop.LastError,
            ["next_start_time"] = ApiJson.Time(crashLoop.HoldUntil),
        };
        return o;
    }

    public static IReadOnlySet<string> ParseInclude(string? include) =>
        (include ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).ToHashSet(StringComparer.Ordinal);

    /// <summary>
    /// Applies a create/patch body to settings. Unknown and read-only fields are ignored, as Connect does; a
    /// writable field of the wrong type or out of range is an error.
    /// </summary>
    public static (ContentSettings? Settings, string? Error, int Code) Apply(ContentSettings current, JsonElement body, bool callerIsAdmin, SchedulerDefaults scheduler)
    {
        var s = current;
        var r = current.Runtime;
        try
        {
            foreach (var p in body.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "name":
                        // Posit Publisher sends "name": "" on every create and update: it means "leave it to the
                        // server" (on create the caller fills in a generated name first), never "clear it".
                        var name = Str(p);
                        if (name.Length > 0)
                        {
                            s = s with { Name = name };
                        }
                        break;
                    case "title": s = s with { Title = p.Value.ValueKind == JsonValueKind.Null ? "" : Str(p) }; break;
                    case "description": s = s with { Description = p.Value.ValueKind == JsonValueKind.Null ? "" : Str(p) }; break;
                    case "access_type": s = s with { AccessType = Str(p) }; break;
                    case "locked": s = s with { Locked = Bool(p) }; break;
                    case "locked_message": s = s with { LockedMessage = p.Value.ValueKind == JsonValueKind.Null ? "" : Str(p) }; break;
                    case "connection_timeout": r = r with { ConnectionTimeout = Int(p) }; break;
                    case "read_timeout": r = r with { ReadTimeout = Int(p) }; break;
                    case "init_timeout": r = r with { InitTimeout = Int(p) }; break;
                    case "idle_timeout": r = r with { IdleTimeout = Int(p) }; break;
                    case "max_processes": r = r with { MaxProcesses = Int(p) }; break;
                    case "min_processes": r = r with { MinProcesses = Int(p) }; break;
                    case "max_conns_per_process": r = r with { MaxConnsPerProcess = Int(p) }; break;
                    case "load_factor": r = r with { LoadFactor = p.Value.ValueKind == JsonValueKind.Null ? null : Num(p) }; break;
                    case "owner_guid":
                        var owner = Str(p);
                        if (!Guid.TryParse(owner, out var ownerGuid))
                        {
                            return (null, "owner_guid must be a GUID.", ApiErrors.InvalidId);
                        }
                        if (ownerGuid != s.OwnerGuid && !callerIsAdmin)
                        {
                            return (null, "Only administrators may change the owner of content.", ApiErrors.NotPermitted);
                        }
                        s = s with { OwnerGuid = ownerGuid };
                        break;
                }
            }
        }
        catch (FieldTypeException e)
        {
            return (null, e.Message, ApiErrors.BadRequest);
        }
        s = s with { Runtime = r };

        if (!ContentNames.IsValid(s.Name))
        {
            return (null, "The content name must be 1 to 64 characters: letters, digits, '-' or '_'.", ApiErrors.InvalidName);
        }
        if (s.Title.Length > 1024)
        {
            return (null, "The content title must be at most 1024 characters.", ApiErrors.BadRequest);
        }
        if (!AccessTypes.IsValid(s.AccessType))
        {
            return (null, $"access_type must be one of '{AccessTypes.All}', '{AccessTypes.LoggedIn}', '{AccessTypes.Acl}'.", ApiErrors.BadRequest);
        }
        var problem = ValidateRuntime(r, scheduler);
        return problem is null ? (s, null, 0) : (null, problem, ApiErrors.BadRequest);
    }

    private static string? ValidateRuntime(RuntimeSettings r, SchedulerDefaults scheduler)
    {
        foreach (var (name, value) in new[] {
            ("connection_timeout", r.ConnectionTimeout), ("read_timeout", r.ReadTimeout), ("init_timeout", r.InitTimeout),
            ("idle_timeout", r.IdleTimeout), ("min_processes", r.MinProcesses) })
        {
            if (value < 0)
            {
                return $"{name} must not be negative.";
            }
        }
        if (r.InitTimeout > scheduler.MaxInitTimeout)
        {
            return $"init_timeout must be at most {scheduler.MaxInitTimeout} on this server.";
        }
        if (r.MaxProcesses is < 1)
        {
            return "max_processes must be at least 1.";
        }
        if (r.MaxProcesses > scheduler.MaxProcessesLimit)
        {
            return $"max_processes must be at most {scheduler.MaxProcessesLimit} on this server.";
        }
        if (r.MaxConnsPerProcess is < 1)
        {
            return "max_conns_per_process must be at least 1.";
        }
        if (r.LoadFactor is < 0 or > 1)
        {
            return "load_factor must be between 0 and 1.";
        }
        if ((r.MinProcesses ?? scheduler.MinProcesses) > (r.MaxProcesses ?? scheduler.MaxProcesses))
        {
            return "min_processes must not exceed max_processes.";
        }
        return null;
    }

    private sealed class FieldTypeException(string message) : Exception(message);

    private static string Str(JsonProperty p) =>
        p.Value.ValueKind == JsonValueKind.String ? p.Value.GetString()! : throw new FieldTypeException($"{p.Name} must be a string.");

    private static bool Bool(JsonProperty p) => p.Value.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        _ => throw new FieldTypeException($"{p.Name} must be true or false."),
    };

    private static int? Int(JsonProperty p) => p.Value.ValueKind switch
    {
        JsonValueKind.Null => null,
        JsonValueKind.Number when p.Value.TryGetInt32(out var i) => i,
        _ => throw new FieldTypeException($"{p.Name} must be an integer or null."),
    };

    // TryGetDouble, not GetDouble: a literal such as 1e400 is valid JSON but no finite double, and must be a 400, not a 500.
    private static double Num(JsonProperty p) =>
        p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetDouble(out var d) ? d : throw new FieldTypeException($"{p.Name} must be a finite number or null.");
}
