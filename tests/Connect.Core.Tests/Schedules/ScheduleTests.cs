using Connect.Core.Schedules;

namespace Connect.Core.Tests.Schedules;

public sealed class ScheduleTests
{
    private static readonly DateTimeOffset Start = new(2026, 1, 5, 8, 0, 0, TimeSpan.FromHours(-5));

    private static Schedule S(string type) => new() { Type = type, StartTime = Start, TimeZone = "America/New_York" };

    [Fact]
    public void Valid_schedules_of_every_type_have_no_problems()
    {
        foreach (var type in ScheduleTypes.All)
        {
            var s = S(type) with { Days = type == ScheduleTypes.DayOfWeek ? [1] : [] };
            Assert.Empty(s.Validate());
        }
    }

    public static TheoryData<Schedule, string> Invalid => new()
    {
        { S("fortnight"), "Schedule type 'fortnight' is unknown" },
        { S(ScheduleTypes.Minute) with { N = 0 }, "N must be between 1 and 100000 (was 0)" },
        { S(ScheduleTypes.Year) with { N = -2 }, "N must be between 1 and 100000 (was -2)" },
        { S(ScheduleTypes.DayOfWeek), "Days must name at least one weekday" },
        { S(ScheduleTypes.Week) with { Days = [1, 7] }, "Days entry 7 is not a weekday" },
        { S(ScheduleTypes.DayOfMonth) with { Day = 32 }, "Day must be between 0 (last day) and 31" },
        { S(ScheduleTypes.DayWeekOfMonth) with { Day = 7 }, "Day must be a weekday between 0 (Sunday) and 6" },
        { S(ScheduleTypes.DayWeekOfMonth) with { Week = 6 }, "Week must be between 0 (last) and 5" },
        { S(ScheduleTypes.Day) with { TimeZone = "Eastern Standard Tyme" }, "timezone 'Eastern Standard Tyme' is not a known time zone" },
        { S(ScheduleTypes.Day) with { TimeZone = "" }, "timezone is required" },
    };

    [Theory]
    [MemberData(nameof(Invalid))]
    public void Invalid_schedules_name_the_problem(Schedule s, string problem) =>
        Assert.Contains(s.Validate(), p => p.Contains(problem, StringComparison.Ordinal));

    [Fact]
    public void Schedules_with_the_same_weekdays_are_equal()
    {
        var a = S(ScheduleTypes.Week) with { Days = [1, 3] };
        var b = S(ScheduleTypes.Week) with { Days = [.. new[] { 1, 3 }] };
        Assert.Equal(a, b);
        Assert.Equal(a.GetHashCode(), b.GetHashCode());
        Assert.NotEqual(a, b with { Days = [1] });
    }

    [Fact]
    public void Weekday_and_semimonth_ignore_N()
    {
        Assert.Empty((S(ScheduleTypes.Weekday) with { N = 0 }).Validate());
        Assert.Empty((S(ScheduleTypes.SemiMonth) with { N = 0 }).Validate());
    }

    [Fact]
    public void Reads_posit_schedule_json()
    {
        var s = Schedule.FromPosit("dayweekofmonth", """{"N":3,"Day":1,"Week":4}""", Start, "Europe/Berlin");
        Assert.Equal((3, 1, 4, "Europe/Berlin"), (s.N, s.Day, s.Week, s.TimeZone));

        Assert.Equal([1, 3], Schedule.FromPosit("week", """{"N":2,"Days":[1,3]}""", Start, "UTC").Days.ToArray());
        Assert.False(Schedule.FromPosit("semimonth", """{"First":false}""", Start, "UTC").First);
        // R's jsonlite writes logicals as strings in some clients ("TRUE"), and connectapi compares against "TRUE".
        Assert.True(Schedule.FromPosit("semimonth", """{"First":"TRUE"}""", Start, "UTC").First);
        Assert.Empty(Schedule.FromPosit("weekday", "{}", Start, "UTC").Validate());
    }

    [Theory]
    [InlineData("{not json")]
    [InlineData("[1,2]")]
    [InlineData("""{"N":"three"}""")]
    [InlineData("""{"First":3}""")]
    public void Malformed_posit_schedule_json_is_a_format_error(string json) =>
        Assert.Throws<FormatException>(() => Schedule.FromPosit("day", json, Start, "UTC"));

    [Theory]
    [InlineData("minute", """{"N":15}""")]
    [InlineData("weekday", "{}")]
    [InlineData("dayofweek", """{"N":1,"Days":[0,6]}""")]
    [InlineData("semimonth", """{"First":true}""")]
    [InlineData("dayofmonth", """{"N":3,"Day":4}""")]
    [InlineData("dayweekofmonth", """{"N":3,"Day":1,"Week":4}""")]
    [InlineData("year", """{"N":2}""")]
    public void Posit_schedule_json_round_trips(string type, string json) =>
        Assert.Equal(json, Schedule.FromPosit(type, json, Start, "UTC").ToPositJson());
}
