namespace Connect.Server.Tests.Infrastructure;

public static class Eventually
{
    /// <summary>Polls <paramref name="probe"/> until it yields a value, or throws after <paramref name="timeout"/> naming <paramref name="what"/>.</summary>
    public static async Task<T> WaitAsync<T>(Func<Task<T?>> probe, TimeSpan timeout, string what, TimeSpan? interval = null) where T : class
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            if (await probe() is { } value)
            {
                return value;
            }
            await Task.Delay(interval ?? TimeSpan.FromMilliseconds(100));
        }
        throw new TimeoutException($"timed out waiting for {what}");
    }
}
