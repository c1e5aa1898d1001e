using System.Globalization;
using Connect.Core.Schedules;
using Microsoft.Extensions.Time.Testing;

namespace Connect.Core.Tests.Schedules;

public sealed class ScheduleMathTests
{
    private static DateTimeOffset T(string iso) => DateTimeOffset.Parse(iso, CultureInfo.InvariantCulture);

    private static Schedule S(string type, string start, string tz = "America/New_York") =>
        new() { Type = type, StartTime = T(start), TimeZone = tz };

    // Occurrences as ISO strings in the zone's own offset, so a wrong offset (wrong side of a DST change) fails too.
    private static string[] Runs(Schedule s, string after, int count) =>
        [.. ScheduleMath.Occurrences(s, T(after), count).Select(o => o.ToString("yyyy-MM-ddTHH:mmzzz", CultureInfo.InvariantCulture))];

    [Fact]
    public void Every_15_minutes_counts_from_start()
    {
        var s = S(ScheduleTypes.Minute, "2026-01-05T09:07:00-05:00") with { N = 15 };
        Assert.Equal(["2026-01-05T09:37-05:00", "2026-01-05T09:52-05:00"], Runs(s, "2026-01-05T09:30:00-05:00", 2));
    }

    [Fact]
    public void Before_start_the_first_run_is_start_itself()
    {
        var s = S(ScheduleTypes.Hour, "2026-01-05T09:07:00-05:00") with { N = 2 };
        Assert.Equal(["2026-01-05T09:07-05:00", "2026-01-05T11:07-05:00"], Runs(s, "2025-12-01T00:00:00Z", 2));
    }

    [Fact]
    public void Next_run_is_strictly_after_an_occurrence()
    {
        var s = S(ScheduleTypes.Day, "2026-01-05T08:00:00-05:00");
        Assert.Equal(T("2026-01-06T08:00:00-05:00"), ScheduleMath.NextRun(s, T("2026-01-05T08:00:00-05:00")));
    }

    [Fact]
    public void Every_3_days_keeps_phase_and_time_of_day()
    {
        var s = S(ScheduleTypes.Day, "2026-01-05T08:00:00-05:00") with { N = 3 };
        Assert.Equal(["2026-01-08T08:00-05:00", "2026-01-11T08:00-05:00"], Runs(s, "2026-01-06T12:00:00-05:00", 2));
    }

    [Fact]
    public void Weekday_skips_the_weekend()
    {
        // 2026-01-09 is a Friday.
        var s = S(ScheduleTypes.Weekday, "2026-01-09T08:00:00-05:00");
        Assert.Equal(["2026-01-09T08:00-05:00", "2026-01-12T08:00-05:00", "2026-01-13T08:00-05:00"], Runs(s, "2026-01-01T00:00:00Z", 3));
    }

    [Fact]
    public void Every_2_weeks_on_monday_and_wednesday()
    {
        // 2026-01-05 is a Monday; the week of 12 January is skipped.
        var s = S(ScheduleTypes.Week, "2026-01-05T08:00:00-05:00") with { N = 2, Days = [1, 3] };
        Assert.Equal(
            ["2026-01-05T08:00-05:00", "2026-01-07T08:00-05:00", "2026-01-19T08:00-05:00", "2026-01-21T08:00-05:00"],
            Runs(s, "2026-01-01T00:00:00Z", 4));
    }

    [Fact]
    public void Week_without_days_repeats_the_start_weekday()
    {
        var s = S(ScheduleTypes.Week, "2026-01-07T08:00:00-05:00");
        Assert.Equal(["2026-01-07T08:00-05:00", "2026-01-14T08:00-05:00"], Runs(s, "2026-01-01T00:00:00Z", 2));
    }

    [Fact]
    public void Day_of_week_runs_on_each_listed_day()
    {
        // Sunday and Saturday, starting on Wednesday 2026-01-07: the start day itself is not listed.
        var s = S(ScheduleTypes.DayOfWeek, "2026-01-07T08:00:00-05:00") with { Days = [0, 6] };
        Assert.Equal(["2026-01-10T08:00-05:00", "2026-01-11T08:00-05:00", "2026-01-17T08:00-05:00"], Runs(s, "2026-01-01T00:00:00Z", 3));
    }

    [Fact]
    public void Semimonth_first_runs_on_the_1st_and_15th()
    {
        var s = S(ScheduleTypes.SemiMonth, "2026-01-03T08:00:00-05:00") with { First = true };
        Assert.Equal(["2026-01-15T08:00-05:00", "2026-02-01T08:00-05:00", "2026-02-15T08:00-05:00"], Runs(s, "2026-01-01T00:00:00Z", 3));
    }

    [Fact]
    public void Semimonth_second_runs_on_the_14th_and_last_day()
    {
        var s = S(ScheduleTypes.SemiMonth, "2026-01-03T08:00:00-05:00") with { First = false };
        Assert.Equal(["2026-01-14T08:00-05:00", "2026-01-31T08:00-05:00", "2026-02-14T08:00-05:00", "2026-02-28T08:00-05:00"],
            Runs(s, "2026-01-01T00:00:00Z", 4));
    }

    [Fact]
    public void Day_31_runs_on_the_last_day_of_shorter_months()
    {
        var s = S(ScheduleTypes.DayOfMonth, "2026-01-01T08:00:00-05:00") with { Day = 31 };
        Assert.Equal(["2026-01-31T08:00-05:00", "2026-02-28T08:00-05:00", "2026-03-31T08:00-04:00", "2026-04-30T08:00-04:00"],
            Runs(s, "2026-01-01T00:00:00Z", 4));
    }

    [Fact]
    public void Day_0_is_the_last_day_and_N_skips_months()
    {
        var s = S(ScheduleTypes.DayOfMonth, "2026-01-01T08:00:00-05:00") with { Day = 0, N = 3 };
        Assert.Equal(["2026-01-31T08:00-05:00", "2026-04-30T08:00-04:00", "2026-07-31T08:00-04:00"], Runs(s, "2026-01-01T00:00:00Z", 3));
    }

    [Fact]
    public void Second_tuesday_of_every_month()
    {
        var s = S(ScheduleTypes.DayWeekOfMonth, "2026-01-01T08:00:00-05:00") with { Day = 2, Week = 2 };
        Assert.Equal(["2026-01-13T08:00-05:00", "2026-02-10T08:00-05:00", "2026-03-10T08:00-04:00"], Runs(s, "2026-01-01T00:00:00Z", 3));
    }

    [Fact]
    public void Last_friday_of_every_month()
    {
        var s = S(ScheduleTypes.DayWeekOfMonth, "2026-01-01T08:00:00-05:00") with { Day = 5, Week = 0 };
        Assert.Equal(["2026-01-30T08:00-05:00", "2026-02-27T08:00-05:00", "2026-03-27T08:00-04:00"], Runs(s, "2026-01-01T00:00:00Z", 3));
    }

    [Fact]
    public void A_missing_fifth_weekday_becomes_the_last()
    {
        // Thursdays: January 2026 has five (29th), February four (26th).
        var s = S(ScheduleTypes.DayWeekOfMonth, "2026-01-01T08:00:00-05:00") with { Day = 4, Week = 5 };
        Assert.Equal(["2026-01-29T08:00-05:00", "2026-02-26T08:00-05:00"], Runs(s, "2026-01-01T00:00:00Z", 2));
    }

    [Fact]
    public void Yearly_on_29_february_runs_on_28_february_in_common_years()
    {
        var s = S(ScheduleTypes.Year, "2024-02-29T08:00:00-05:00");
        Assert.Equal(["2025-02-28T08:00-05:00", "2026-02-28T08:00-05:00", "2027-02-28T08:00-05:00", "2028-02-29T08:00-05:00"],
            Runs(s, "2024-03-01T00:00:00Z", 4));
    }

    [Fact]
    public void Every_2_years()
    {
        var s = S(ScheduleTypes.Year, "2025-06-10T08:00:00-04:00") with { N = 2 };
        Assert.Equal(["2027-06-10T08:00-04:00", "2029-06-10T08:00-04:00"], Runs(s, "2025-06-11T00:00:00Z", 2));
    }

    // Daily schedules keep their wall-clock time: a skipped time runs when the clocks jump (03:00 new time), a
    // repeated one runs once, at its first instance (the pre-change offset).
    [Theory]
    [InlineData("America/New_York", "2026-03-06T02:30:00-05:00", "2026-03-06T12:00:00Z",
        "2026-03-07T02:30-05:00", "2026-03-08T03:00-04:00", "2026-03-09T02:30-04:00")]
    [InlineData("America/New_York", "2026-10-30T01:30:00-04:00", "2026-10-30T12:00:00Z",
        "2026-10-31T01:30-04:00", "2026-11-01T01:30-04:00", "2026-11-02T01:30-05:00")]
    [InlineData("America/New_York", "2026-10-30T02:30:00-04:00", "2026-10-30T12:00:00Z",
        "2026-10-31T02:30-04:00", "2026-11-01T02:30-05:00", "2026-11-02T02:30-05:00")]
    [InlineData("Europe/Berlin", "2026-03-27T02:30:00+01:00", "2026-03-27T12:00:00Z",
        "2026-03-28T02:30+01:00", "2026-03-29T03:00+02:00", "2026-03-30T02:30+02:00")]
    [InlineData("Europe/Berlin", "2026-10-23T02:30:00+02:00", "2026-10-23T12:00:00Z",
        "2026-10-24T02:30+02:00", "2026-10-25T02:30+02:00", "2026-10-26T02:30+01:00")]
    [InlineData("Australia/Sydney", "2026-04-03T02:30:00+11:00", "2026-04-03T12:00:00Z",
        "2026-04-04T02:30+11:00", "2026-04-05T02:30+11:00", "2026-04-06T02:30+10:00")]
    [InlineData("Australia/Sydney", "2026-10-02T02:30:00+10:00", "2026-10-02T12:00:00Z",
        "2026-10-03T02:30+10:00", "2026-10-04T03:00+11:00", "2026-10-05T02:30+11:00")]
    public void Daily_across_a_DST_change(string tz, string start, string after, string first, string change, string third)
    {
        var s = S(ScheduleTypes.Day, start, tz);
        Assert.Equal([first, change, third], Runs(s, after, 3));
    }

    // Hour and minute schedules count elapsed time: exactly one period between runs through either change, so the
    // wall clock skips an hour in spring and repeats one in autumn.
    [Theory]
    [InlineData("America/New_York", "2026-03-08T00:00:00-05:00", ScheduleTypes.Hour, 1, 6)]
    [InlineData("America/New_York", "2026-11-01T00:00:00-04:00", ScheduleTypes.Hour, 1, 6)]
    [InlineData("Europe/Berlin", "2026-03-29T00:00:00+01:00", ScheduleTypes.Hour, 1, 6)]
    [InlineData("Europe/Berlin", "2026-10-25T00:00:00+02:00", ScheduleTypes.Hour, 1, 6)]
    [InlineData("Australia/Sydney", "2026-04-05T00:00:00+11:00", ScheduleTypes.Hour, 1, 6)]
    [InlineData("Australia/Sydney", "2026-10-04T00:00:00+10:00", ScheduleTypes.Hour, 1, 6)]
    [InlineData("America/New_York", "2026-03-08T01:00:00-05:00", ScheduleTypes.Minute, 15, 12)]
    [InlineData("America/New_York", "2026-11-01T01:00:00-04:00", ScheduleTypes.Minute, 15, 12)]
    [InlineData("Europe/Berlin", "2026-03-29T01:00:00+01:00", ScheduleTypes.Minute, 15, 12)]
    [InlineData("Europe/Berlin", "2026-10-25T02:00:00+02:00", ScheduleTypes.Minute, 15, 12)]
    [InlineData("Australia/Sydney", "2026-04-05T02:00:00+11:00", ScheduleTypes.Minute, 15, 12)]
    [InlineData("Australia/Sydney", "2026-10-04T01:00:00+10:00", ScheduleTypes.Minute, 15, 12)]
    public void Elapsed_intervals_across_a_DST_change(string tz, string start, string type, int n, int count)
    {
        var s = S(type, start, tz) with { N = n };
        var period = type == ScheduleTypes.Hour ? TimeSpan.FromHours(n) : TimeSpan.FromMinutes(n);
        var runs = ScheduleMath.Occurrences(s, T(start) - TimeSpan.FromTicks(1), count);

        Assert.Equal(count, runs.Count);
        Assert.Equal(T(start), runs[0]);
        Assert.All(runs.Zip(runs.Skip(1)), p => Assert.Equal(period, p.Second - p.First));
        // The offsets differ between first and last run: the window really crosses the change.
        Assert.NotEqual(runs[0].Offset, runs[^1].Offset);
    }

    [Fact]
    public void Hourly_wall_clock_repeats_01_00_at_the_new_york_fall_back()
    {
        var s = S(ScheduleTypes.Hour, "2026-11-01T00:00:00-04:00");
        Assert.Equal(["2026-11-01T01:00-04:00", "2026-11-01T01:00-05:00", "2026-11-01T02:00-05:00"], Runs(s, "2026-11-01T00:00:00-04:00", 3));
    }

    [Fact]
    public void A_skipped_wall_clock_time_resolves_to_the_jump()
    {
        var berlin = TimeZoneInfo.FindSystemTimeZoneById("Europe/Berlin");
        Assert.Equal(T("2026-03-29T03:00:00+02:00"), ScheduleMath.Resolve(new DateTime(2026, 3, 29, 2, 30, 0), berlin));
        Assert.Equal(T("2026-10-25T02:30:00+02:00"), ScheduleMath.Resolve(new DateTime(2026, 10, 25, 2, 30, 0), berlin));
    }

    [Fact]
    public void Slots_missed_for_three_days_run_once_the_latest()
    {
        var s = S(ScheduleTypes.Day, "2026-01-01T06:00:00-05:00");
        var lastRun = T("2026-01-10T06:00:00-05:00");
        var time = new FakeTimeProvider(T("2026-01-13T12:00:00-05:00"));

        var due = ScheduleMath.DueOccurrence(s, lastRun, time);

        Assert.Equal(new ScheduleDue(T("2026-01-13T06:00:00-05:00"), T("2026-01-14T06:00:00-05:00")), due);
    }

    [Fact]
    public void A_slot_already_run_is_not_due_again()
    {
        var s = S(ScheduleTypes.Day, "2026-01-01T06:00:00-05:00");
        var time = new FakeTimeProvider(T("2026-01-13T06:00:00-05:00"));

        var first = ScheduleMath.DueOccurrence(s, T("2026-01-12T06:00:00-05:00"), time);
        Assert.Equal(T("2026-01-13T06:00:00-05:00"), first.Due);

        time.Advance(TimeSpan.FromMinutes(5));
        var again = ScheduleMath.DueOccurrence(s, first.Due, time);
        Assert.Null(again.Due);
        Assert.Equal(T("2026-01-14T06:00:00-05:00"), again.Next);
    }

    [Fact]
    public void Nothing_is_due_before_start_and_the_first_run_is_next()
    {
        var s = S(ScheduleTypes.Week, "2026-02-02T09:00:00-05:00");
        var due = ScheduleMath.DueOccurrence(s, null, new FakeTimeProvider(T("2026-01-20T00:00:00Z")));
        Assert.Equal(new ScheduleDue(null, T("2026-02-02T09:00:00-05:00")), due);
    }

    [Fact]
    public void Missed_minute_slots_collapse_into_the_latest()
    {
        var s = S(ScheduleTypes.Minute, "2026-01-01T00:00:00Z", "UTC") with { N = 15 };
        var due = ScheduleMath.DueOccurrence(s, T("2026-01-01T00:15:00Z"), new FakeTimeProvider(T("2026-01-02T10:20:00Z")));
        Assert.Equal(new ScheduleDue(T("2026-01-02T10:15:00Z"), T("2026-01-02T10:30:00Z")), due);
    }

    [Theory]
    [InlineData(ScheduleTypes.Weekday, "2026-01-12T08:00:00-05:00")]
    [InlineData(ScheduleTypes.SemiMonth, "2026-03-01T08:00:00-05:00")]
    [InlineData(ScheduleTypes.DayWeekOfMonth, "2026-03-10T08:00:00-04:00")]
    [InlineData(ScheduleTypes.Year, "2026-01-01T08:00:00-05:00")]
    public void Latest_run_for_calendar_types_matches_the_forward_walk(string type, string expectedLatest)
    {
        var s = S(type, "2025-01-01T08:00:00-05:00") with { Day = 2, Week = 2 };
        var now = T(expectedLatest) + TimeSpan.FromHours(1);
        Assert.Equal(T(expectedLatest), ScheduleMath.LatestRun(s, now));
        Assert.True(ScheduleMath.NextRun(s, T(expectedLatest)) > now);
    }

    [Fact]
    public void An_invalid_schedule_is_refused_with_its_problems()
    {
        var s = S(ScheduleTypes.Day, "2026-01-01T00:00:00Z", "Mars/Olympus_Mons") with { N = 0 };
        var e = Assert.Throws<ArgumentException>(() => ScheduleMath.NextRun(s, T("2026-01-01T00:00:00Z")));
        Assert.Contains("N must be between 1", e.Message);
        Assert.Contains("'Mars/Olympus_Mons' is not a known time zone", e.Message);
    }
}
