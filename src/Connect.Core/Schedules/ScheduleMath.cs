namespace Connect.Core.Schedules;

/// <summary>What a schedule tick should do: render <see cref="Due"/> (if any) and wake again at <see cref="Next"/>.</summary>
/// <param name="Due">The most recent occurrence at or before now that has not run yet; null when nothing is owed.</param>
/// <param name="Next">The first occurrence strictly after now; null when the schedule never runs again.</param>
[GenerateSerializer, Immutable, Alias("Connect.ScheduleDue")]
public sealed record ScheduleDue([property: Id(0)] DateTimeOffset? Due, [property: Id(1)] DateTimeOffset? Next);

/// <summary>
/// Turns a <see cref="Schedule"/> into run instants. Pure: "now" is always a parameter (or a <see cref="TimeProvider"/>).
/// </summary>
/// <remarks>
/// <para><c>minute</c> and <c>hour</c> count elapsed time from <c>start_time</c>: every N×60 s or N×3600 s, whatever the
/// wall clock does, so a DST change neither doubles nor drops a run.</para>
/// <para>All other types count calendar days in the schedule's time zone and keep the wall-clock time of day of
/// <c>start_time</c>. When that wall-clock time does not exist on a day (clocks spring forward over it) the run is at
/// the instant the clocks jump, i.e. the first instant whose wall clock reads later than the missing time (02:30 in a
/// 02:00→03:00 gap runs at 03:00 new time). When it occurs twice (clocks fall back) the run is at the first of the two,
/// once.</para>
/// <para>Days of the month past a month's end (31st in April, 29 February in 2027) run on that month's last day, so a
/// monthly or yearly schedule never silently skips a period; a fifth weekday that a month lacks likewise becomes its
/// last such weekday.</para>
/// <para>No occurrence is earlier than <c>start_time</c>.</para>
/// </remarks>
public static class ScheduleMath
{
    /// <summary>The first occurrence strictly after <paramref name="after"/>, or null if there is none before year 10000.</summary>
    /// <exception cref="ArgumentException">The schedule is invalid (see <see cref="Schedule.Validate"/>).</exception>
    public static DateTimeOffset? NextRun(Schedule schedule, DateTimeOffset after)
    {
        var tz = ZoneOf(schedule);
        if (ElapsedPeriod(schedule) is { } period)
        {
            if (after < schedule.StartTime)
            {
                return TimeZoneInfo.ConvertTime(schedule.StartTime, tz);
            }
            var k = (after - schedule.StartTime).Ticks / period.Ticks + 1;
            if (k > (DateTimeOffset.MaxValue.UtcTicks - schedule.StartTime.UtcTicks) / period.Ticks)
            {
                return null;
            }
            return TimeZoneInfo.ConvertTime(schedule.StartTime + TimeSpan.FromTicks(k * period.Ticks), tz);
        }
        return NextCalendarRun(schedule, tz, after);
    }

    /// <summary>The latest occurrence at or before <paramref name="now"/>, or null if the schedule has not started.</summary>
    /// <exception cref="ArgumentException">The schedule is invalid.</exception>
    public static DateTimeOffset? LatestRun(Schedule schedule, DateTimeOffset now)
    {
        var tz = ZoneOf(schedule);
        if (now < schedule.StartTime)
        {
            return null;
        }
        if (ElapsedPeriod(schedule) is { } period)
        {
            var k = (now - schedule.StartTime).Ticks / period.Ticks;
            return TimeZoneInfo.ConvertTime(schedule.StartTime + TimeSpan.FromTicks(k * period.Ticks), tz);
        }
        // Walk forward from one longest gap back: some occurrence lies in that window if any lies at or before now,
        // and the window holds only a handful, so this stays cheap without a backward calendar walk per type.
        var window = LongestGap(schedule);
        var from = now - schedule.StartTime > window ? now - window : schedule.StartTime - TimeSpan.FromTicks(1);
        DateTimeOffset? latest = null;
        for (var c = NextCalendarRun(schedule, tz, from); c is { } run && run <= now; c = NextCalendarRun(schedule, tz, run))
        {
            latest = run;
        }
        return latest;
    }

    /// <summary>
    /// What a tick at <paramref name="now"/> owes: the single most recent occurrence at or before now that is later than
    /// <paramref name="lastRunOccurrence"/> (so slots missed while nothing was running collapse into one run, and a
    /// repeated tick for the same slot owes nothing), and the next occurrence after now.
    /// </summary>
    /// <param name="lastRunOccurrence">The occurrence (not the wall-clock time) of the last render started; null if none.</param>
    /// <exception cref="ArgumentException">The schedule is invalid.</exception>
    public static ScheduleDue DueOccurrence(Schedule schedule, DateTimeOffset? lastRunOccurrence, DateTimeOffset now)
    {
        var latest = LatestRun(schedule, now);
        var due = latest is { } l && (lastRunOccurrence is not { } last || l > last) ? latest : null;
        return new ScheduleDue(due, NextRun(schedule, now));
    }

    /// <inheritdoc cref="DueOccurrence(Schedule, DateTimeOffset?, DateTimeOffset)"/>
    public static ScheduleDue DueOccurrence(Schedule schedule, DateTimeOffset? lastRunOccurrence, TimeProvider time) =>
        DueOccurrence(schedule, lastRunOccurrence, time.GetUtcNow());

    /// <summary>The first <paramref name="count"/> occurrences strictly after <paramref name="after"/> (fewer if the calendar ends).</summary>
    public static IReadOnlyList<DateTimeOffset> Occurrences(Schedule schedule, DateTimeOffset after, int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var runs = new List<DateTimeOffset>(count);
        for (var c = after; runs.Count < count && NextRun(schedule, c) is { } next; c = next)
        {
            runs.Add(next);
        }
        return runs;
    }

    /// <summary>
    /// The instant a wall-clock time in <paramref name="tz"/> stands for, under the rules in the class remarks:
    /// a skipped time maps to the instant the clocks jump, a repeated time to its first instance.
    /// </summary>
    public static DateTimeOffset Resolve(DateTime wallClock, TimeZoneInfo tz)
    {
        var local = DateTime.SpecifyKind(wallClock, DateTimeKind.Unspecified);
        DateTime utc;
        if (tz.IsAmbiguousTime(local))
        {
            // The larger offset is the earlier instant: the one before the clocks went back.
            utc = DateTime.SpecifyKind(local - tz.GetAmbiguousTimeOffsets(local).Max(), DateTimeKind.Utc);
        }
        else if (tz.IsInvalidTime(local))
        {
            utc = FirstInstantAfter(local, tz);
        }
        else
        {
            utc = DateTime.SpecifyKind(local - tz.GetUtcOffset(local), DateTimeKind.Utc);
        }
        return TimeZoneInfo.ConvertTime(new DateTimeOffset(utc), tz);
    }

    // Smallest UTC instant whose wall clock reads later than the skipped time `local`: the transition itself. The
    // wall clock only moves forward within a day of a gap, so a binary search over that window finds it exactly.
    private static DateTime FirstInstantAfter(DateTime local, TimeZoneInfo tz)
    {
        var guess = local - tz.BaseUtcOffset;
        long lo = guess.AddDays(-1).Ticks, hi = guess.AddDays(1).Ticks;
        while (lo < hi)
        {
            var mid = lo + (hi - lo) / 2;
            if (TimeZoneInfo.ConvertTimeFromUtc(new DateTime(mid, DateTimeKind.Utc), tz) > local)
            {
                hi = mid;
            }
            else
            {
                lo = mid + 1;
            }
        }
        return new DateTime(lo, DateTimeKind.Utc);
    }

    private static TimeZoneInfo ZoneOf(Schedule schedule)
    {
        var problems = schedule.Validate().ToList();
        if (problems.Count > 0)
        {
            throw new ArgumentException(string.Join(" ", problems), nameof(schedule));
        }
        return TimeZoneInfo.FindSystemTimeZoneById(schedule.TimeZone);
    }

    private static TimeSpan? ElapsedPeriod(Schedule s) => s.Type switch
    {
        ScheduleTypes.Minute => TimeSpan.FromMinutes(s.N),
        ScheduleTypes.Hour => TimeSpan.FromHours(s.N),
        _ => null,
    };

    // An upper bound on the time between two consecutive occurrences, with a day's slack for DST shifts.
    private static TimeSpan LongestGap(Schedule s) => TimeSpan.FromDays(s.Type switch
    {
        ScheduleTypes.Day => s.N + 1,
        ScheduleTypes.Weekday => 5,
        ScheduleTypes.Week or ScheduleTypes.DayOfWeek => 7L * s.N + 1,
        ScheduleTypes.SemiMonth => 19,
        ScheduleTypes.DayOfMonth or ScheduleTypes.DayWeekOfMonth => 31L * s.N + 32,
        _ => 366L * s.N + 2,
    });

    private static DateTimeOffset? NextCalendarRun(Schedule s, TimeZoneInfo tz, DateTimeOffset after)
    {
        var startLocal = TimeZoneInfo.ConvertTime(s.StartTime, tz).DateTime;
        var startDate = DateOnly.FromDateTime(startLocal);
        var timeOfDay = TimeOnly.FromDateTime(startLocal);
        // A day earlier than `after`'s own date, because a skipped wall-clock time resolves later than itself.
        var from = startDate;
        if (after >= s.StartTime)
        {
            var afterDate = DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(after, tz).DateTime);
            from = afterDate.DayNumber > startDate.DayNumber ? afterDate.AddDays(-1) : startDate;
        }
        foreach (var date in CandidateDates(s, startDate, from))
        {
            var run = Resolve(date.ToDateTime(timeOfDay), tz);
            if (run > after && run >= s.StartTime)
            {
                return run;
            }
        }
        return null;
    }

    // The schedule's dates on or after `from` (never before `start`), ascending, until the calendar ends.
    private static IEnumerable<DateOnly> CandidateDates(Schedule s, DateOnly start, DateOnly from)
    {
        switch (s.Type)
        {
            case ScheduleTypes.Day:
            {
                var k = (from.DayNumber - start.DayNumber + s.N - 1) / s.N;
                for (var d = (long)start.DayNumber + k * s.N; d <= DateOnly.MaxValue.DayNumber; d += s.N)
                {
                    yield return DateOnly.FromDayNumber((int)d);
                }
                break;
            }
            case ScheduleTypes.Weekday:
                for (var d = (long)from.DayNumber; d <= DateOnly.MaxValue.DayNumber; d++)
                {
                    var date = DateOnly.FromDayNumber((int)d);
                    if (date.DayOfWeek is not (DayOfWeek.Saturday or DayOfWeek.Sunday))
                    {
                        yield return date;
                    }
                }
                break;
            case ScheduleTypes.Week or ScheduleTypes.DayOfWeek:
            {
                var days = s.Days.IsDefaultOrEmpty ? [(int)start.DayOfWeek] : s.Days;
                // Weeks run Sunday to Saturday (Posit's weekday 0 is Sunday) and are counted from the week of start.
                var firstSunday = start.DayNumber - (int)start.DayOfWeek;
                for (var d = (long)from.DayNumber; d <= DateOnly.MaxValue.DayNumber;)
                {
                    var week = (d - firstSunday) / 7;
                    if (week % s.N != 0)
                    {
                        d = firstSunday + (week / s.N + 1) * s.N * 7L;
                        continue;
                    }
                    var date = DateOnly.FromDayNumber((int)d);
                    if (days.Contains((int)date.DayOfWeek))
                    {
                        yield return date;
                    }
                    d++;
                }
                break;
            }
            default:
                foreach (var date in MonthlyDates(s, start, from))
                {
                    yield return date;
                }
                break;
        }
    }

    private static IEnumerable<DateOnly> MonthlyDates(Schedule s, DateOnly start, DateOnly from)
    {
        var step = s.Type switch
        {
            ScheduleTypes.SemiMonth => 1L,
            ScheduleTypes.Year => 12L * s.N,
            _ => s.N,
        };
        long startMonth = start.Year * 12L + start.Month - 1, fromMonth = from.Year * 12L + from.Month - 1;
        var lastMonth = 9999 * 12L + 11;
        var k = Math.Max(0, (fromMonth - startMonth + step - 1) / step);
        for (var m = startMonth + k * step; m <= lastMonth; m += step)
        {
            int year = (int)(m / 12), month = (int)(m % 12) + 1, length = DateTime.DaysInMonth(year, month);
            DateOnly At(int day) => new(year, month, Math.Min(day, length));
            IEnumerable<DateOnly> dates = s.Type switch
            {
                ScheduleTypes.SemiMonth => s.First ? [At(1), At(15)] : [At(14), At(length)],
                ScheduleTypes.DayOfMonth => [At(s.Day == 0 ? length : s.Day)],
                ScheduleTypes.DayWeekOfMonth => [NthWeekday(year, month, (DayOfWeek)s.Day, s.Week)],
                _ => [At(start.Day)],
            };
            foreach (var date in dates.Where(d => d >= from))
            {
                yield return date;
            }
        }
    }

    // week 1–5: the first … fifth such weekday (a missing fifth becomes the last); week 0: the last.
    private static DateOnly NthWeekday(int year, int month, DayOfWeek weekday, int week)
    {
        var first = new DateOnly(year, month, 1);
        var firstMatch = first.AddDays(((int)weekday - (int)first.DayOfWeek + 7) % 7);
        var count = (DateTime.DaysInMonth(year, month) - firstMatch.Day) / 7 + 1;
        var nth = week == 0 ? count : Math.Min(week, count);
        return firstMatch.AddDays(7 * (nth - 1));
    }
}
