using System.Collections.Immutable;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Connect.Core.Schedules;

/// <summary>
/// Posit Connect's schedule <c>type</c> strings (legacy <c>/__api__/schedules</c>), kept as strings as the wire has them
/// so that an unknown type surfaces in <see cref="Schedule.Validate"/> instead of failing deserialization.
/// </summary>
public static class ScheduleTypes
{
    /// <summary>Every <c>N</c> minutes, elapsed time from <c>start_time</c>.</summary>
    public const string Minute = "minute";
    /// <summary>Every <c>N</c> hours, elapsed time from <c>start_time</c>.</summary>
    public const string Hour = "hour";
    /// <summary>Every <c>N</c> days at the wall-clock time of <c>start_time</c>.</summary>
    public const string Day = "day";
    /// <summary>Monday to Friday at the wall-clock time of <c>start_time</c>.</summary>
    public const string Weekday = "weekday";
    /// <summary>Every <c>N</c> weeks on <c>Days</c> (default: the weekday of <c>start_time</c>).</summary>
    public const string Week = "week";
    /// <summary>On <c>Days</c> of every (<c>N</c>th, default 1) week.</summary>
    public const string DayOfWeek = "dayofweek";
    /// <summary>1st and 15th (<c>First</c> true) or 14th and last day (<c>First</c> false) of every month.</summary>
    public const string SemiMonth = "semimonth";
    /// <summary>Day <c>Day</c> of every <c>N</c>th month; 0, or a day past the month's end, is the month's last day.</summary>
    public const string DayOfMonth = "dayofmonth";
    /// <summary>The <c>Week</c>th <c>Day</c>-weekday of every <c>N</c>th month; <c>Week</c> 0 is the last one.</summary>
    public const string DayWeekOfMonth = "dayweekofmonth";
    /// <summary>Every <c>N</c> years on the month and day of <c>start_time</c>.</summary>
    public const string Year = "year";

    public static readonly IReadOnlyList<string> All =
        [Minute, Hour, Day, Weekday, Week, DayOfWeek, SemiMonth, DayOfMonth, DayWeekOfMonth, Year];
}

/// <summary>
/// When a variant renders: Posit Connect's schedule (<c>type</c>, the <c>schedule</c> JSON string, <c>start_time</c>,
/// <c>timezone</c>). <see cref="ScheduleMath"/> turns it into run instants.
/// </summary>
/// <remarks>
/// Field meanings follow connectapi's <c>set_schedule_*</c> helpers: weekdays are 0 (Sunday) to 6 (Saturday);
/// <see cref="Day"/> is a weekday for <c>dayweekofmonth</c> and a day of the month (0–31) for <c>dayofmonth</c>;
/// <see cref="Week"/> is 0–5. Posit does not publish what 0 means for a day or week of the month; we read it as
/// "the last one", the only meaning that makes both 0 and 31 (or 5) useful values of one range.
/// </remarks>
[GenerateSerializer, Immutable, Alias("Connect.Schedule")]
public sealed record Schedule
{
    /// <summary>One of <see cref="ScheduleTypes"/>.</summary>
    [Id(0)] public required string Type { get; init; }
    /// <summary>Posit's <c>N</c>: the interval in the type's unit. Ignored by <c>weekday</c> and <c>semimonth</c>.</summary>
    [Id(1)] public int N { get; init; } = 1;
    /// <summary>Posit's <c>Days</c>: weekdays, 0 = Sunday … 6 = Saturday (<c>week</c>, <c>dayofweek</c>).</summary>
    [Id(2)] public ImmutableArray<int> Days { get; init; } = [];
    /// <summary>Posit's <c>First</c> (<c>semimonth</c>): true = 1st and 15th, false = 14th and last day.</summary>
    [Id(3)] public bool First { get; init; } = true;
    /// <summary>Posit's <c>Day</c>: day of month (0 = last) for <c>dayofmonth</c>, weekday (0 = Sunday) for <c>dayweekofmonth</c>.</summary>
    [Id(4)] public int Day { get; init; } = 1;
    /// <summary>Posit's <c>Week</c> (<c>dayweekofmonth</c>): 1–5 = first … fifth, 0 = last.</summary>
    [Id(5)] public int Week { get; init; } = 1;
    /// <summary>The first possible run; it also fixes the time of day and the phase of every interval.</summary>
    [Id(6)] public required DateTimeOffset StartTime { get; init; }
    /// <summary>IANA time zone id in which days, weeks and months are counted.</summary>
    [Id(7)] public required string TimeZone { get; init; }

    /// <summary>Every problem with this schedule, each a sentence; empty when the schedule can be used.</summary>
    public IEnumerable<string> Validate()
    {
        if (!ScheduleTypes.All.Contains(Type))
        {
            yield return $"Schedule type '{Type}' is unknown; expected one of {string.Join(", ", ScheduleTypes.All)}.";
        }
        else if (Type is not (ScheduleTypes.Weekday or ScheduleTypes.SemiMonth) && N is < 1 or > MaxN)
        {
            yield return $"Schedule N must be between 1 and {MaxN} (was {N}).";
        }
        if (Type == ScheduleTypes.DayOfWeek && Days.IsDefaultOrEmpty)
        {
            yield return "Schedule Days must name at least one weekday for type 'dayofweek'.";
        }
        if (Type is ScheduleTypes.Week or ScheduleTypes.DayOfWeek && !Days.IsDefault)
        {
            foreach (var d in Days.Where(d => d is < 0 or > 6).Distinct())
            {
                yield return $"Schedule Days entry {d} is not a weekday (0 = Sunday … 6 = Saturday).";
            }
        }
        if (Type == ScheduleTypes.DayOfMonth && Day is < 0 or > 31)
        {
            yield return $"Schedule Day must be between 0 (last day) and 31 for type 'dayofmonth' (was {Day}).";
        }
        if (Type == ScheduleTypes.DayWeekOfMonth)
        {
            if (Day is < 0 or > 6)
            {
                yield return $"Schedule Day must be a weekday between 0 (Sunday) and 6 (Saturday) for type 'dayweekofmonth' (was {Day}).";
            }
            if (Week is < 0 or > 5)
            {
                yield return $"Schedule Week must be between 0 (last) and 5 for type 'dayweekofmonth' (was {Week}).";
            }
        }
        if (string.IsNullOrWhiteSpace(TimeZone))
        {
            yield return "Schedule timezone is required.";
        }
        else if (!System.TimeZoneInfo.TryFindSystemTimeZoneById(TimeZone, out _))
        {
            yield return $"Schedule timezone '{TimeZone}' is not a known time zone.";
        }
    }

    // ImmutableArray compares by reference; two schedules with the same weekdays are the same schedule.
    public bool Equals(Schedule? other) =>
        other is not null && Type == other.Type && N == other.N && First == other.First && Day == other.Day &&
        Week == other.Week && StartTime == other.StartTime && TimeZone == other.TimeZone &&
        Days.AsSpan().SequenceEqual(other.Days.AsSpan());

    public override int GetHashCode()
    {
        var hash = new HashCode();
        hash.Add(Type);
        hash.Add(N);
        hash.Add(First);
        hash.Add(Day);
        hash.Add(Week);
        hash.Add(StartTime);
        hash.Add(TimeZone);
        foreach (var d in Days.AsSpan())
        {
            hash.Add(d);
        }
        return hash.ToHashCode();
    }

    /// <summary>
    /// Upper bound for <see cref="N"/>: beyond it day, month and year arithmetic leaves the calendar (year 9999) for
    /// most types, and nobody schedules a render that rarely.
    /// </summary>
    public const int MaxN = 100_000;

    /// <summary>Builds a schedule from Posit's wire fields; the <c>schedule</c> JSON string carries the type's parameters.</summary>
    /// <exception cref="FormatException"><paramref name="scheduleJson"/> is not a JSON object of the expected field types.</exception>
    public static Schedule FromPosit(string type, string? scheduleJson, DateTimeOffset startTime, string timezone)
    {
        JsonObject fields;
        try
        {
            fields = string.IsNullOrWhiteSpace(scheduleJson)
                ? []
                : JsonNode.Parse(scheduleJson) as JsonObject ?? throw new FormatException("The schedule must be a JSON object.");
        }
        catch (JsonException e)
        {
            throw new FormatException($"The schedule is not valid JSON: {e.Message}", e);
        }
        var schedule = new Schedule { Type = type, StartTime = startTime, TimeZone = timezone };
        try
        {
            // Clients write these both as numbers and as strings (R's jsonlite and hand-written bodies), and First as a
            // boolean or "TRUE": accept what reads unambiguously.
            if (Field(fields, "N") is { } n) schedule = schedule with { N = ReadInt(n) };
            if (Field(fields, "Day") is { } day) schedule = schedule with { Day = ReadInt(day) };
            if (Field(fields, "Week") is { } week) schedule = schedule with { Week = ReadInt(week) };
            if (Field(fields, "First") is { } first) schedule = schedule with { First = ReadBool(first) };
            if (Field(fields, "Days") is { } days)
            {
                schedule = schedule with
                {
                    Days = days is JsonArray a ? [.. a.Select(x => ReadInt(x ?? throw new FormatException("Days holds a null.")))] : [ReadInt(days)],
                };
            }
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or OverflowException)
        {
            throw new FormatException($"The schedule {scheduleJson} has a field of the wrong type: {e.Message}", e);
        }
        return schedule;
    }

    /// <summary>The <c>schedule</c> JSON string Posit clients expect for this type.</summary>
    public string ToPositJson()
    {
        var o = new JsonObject();
        switch (Type)
        {
            case ScheduleTypes.Minute or ScheduleTypes.Hour or ScheduleTypes.Day or ScheduleTypes.Year:
                o["N"] = N;
                break;
            case ScheduleTypes.Week or ScheduleTypes.DayOfWeek:
                o["N"] = N;
                if (!Days.IsDefaultOrEmpty) o["Days"] = new JsonArray([.. Days.Select(d => (JsonNode?)d)]);
                break;
            case ScheduleTypes.SemiMonth:
                o["First"] = First;
                break;
            case ScheduleTypes.DayOfMonth:
                o["N"] = N;
                o["Day"] = Day;
                break;
            case ScheduleTypes.DayWeekOfMonth:
                o["N"] = N;
                o["Day"] = Day;
                o["Week"] = Week;
                break;
        }
        return o.ToJsonString();
    }

    private static JsonNode? Field(JsonObject o, string name) =>
        o.FirstOrDefault(p => string.Equals(p.Key, name, StringComparison.OrdinalIgnoreCase)).Value;

    private static int ReadInt(JsonNode node) => node.GetValueKind() switch
    {
        JsonValueKind.Number => node.GetValue<int>(),
        JsonValueKind.String => int.Parse(node.GetValue<string>(), System.Globalization.CultureInfo.InvariantCulture),
        var k => throw new FormatException($"expected a number, found {k}"),
    };

    private static bool ReadBool(JsonNode node) => node.GetValueKind() switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String => bool.Parse(node.GetValue<string>()),
        var k => throw new FormatException($"expected true or false, found {k}"),
    };
}
