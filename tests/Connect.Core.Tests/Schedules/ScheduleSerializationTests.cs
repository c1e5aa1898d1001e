using Connect.Core.Schedules;
using Microsoft.Extensions.DependencyInjection;
using Orleans.Serialization;

namespace Connect.Core.Tests.Schedules;

// Schedules travel in grain calls and grain state: the generated codecs must carry every field, Days included.
public sealed class ScheduleSerializationTests
{
    [Fact]
    public void Schedule_and_due_survive_the_orleans_serializer()
    {
        using var services = new ServiceCollection().AddSerializer().BuildServiceProvider();
        var serializer = services.GetRequiredService<Serializer>();
        var schedule = new Schedule
        {
            Type = ScheduleTypes.DayWeekOfMonth, N = 3, Days = [1, 3], First = false, Day = 2, Week = 0,
            StartTime = new DateTimeOffset(2026, 1, 5, 8, 0, 0, TimeSpan.FromHours(-5)), TimeZone = "America/New_York",
        };
        var due = new ScheduleDue(schedule.StartTime, null);

        Assert.Equal(schedule, serializer.Deserialize<Schedule>(serializer.SerializeToArray(schedule)));
        Assert.Equal(due, serializer.Deserialize<ScheduleDue>(serializer.SerializeToArray(due)));
    }
}
