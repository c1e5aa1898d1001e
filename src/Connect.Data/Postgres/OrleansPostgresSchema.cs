namespace Connect.Data.Postgres;

/// <summary>
/// The tables and the <c>OrleansQuery</c> rows that Orleans' ADO.NET clustering, reminder and grain-storage providers
/// need on PostgreSQL (the packages ship no scripts). Applied by the PostgreSQL migration runner as their own stream.
/// </summary>
public static class OrleansPostgresSchema
{
    /// <summary>Forward-only, each idempotent (safe to run again on a database that has it).</summary>
    public static IReadOnlyList<(int Version, string Sql)> Migrations { get; } = [];
}
