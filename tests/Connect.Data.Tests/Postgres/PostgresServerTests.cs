using Connect.Testing;
using Npgsql;

namespace Connect.Data.Tests.Postgres;

public sealed class PostgresServerTests
{
    [Fact]
    public async Task Starts_a_server_and_hands_out_separate_databases()
    {
        var server = await PostgresServer.SharedAsync();
        var first = await server.CreateDatabaseAsync();
        var second = await server.CreateDatabaseAsync();
        Assert.NotEqual(first, second);
        await using var connection = new NpgsqlConnection(first);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT current_database()", connection);
        var name = (string?)await command.ExecuteScalarAsync();
        Assert.Equal(new NpgsqlConnectionStringBuilder(first).Database, name);
    }
}
