using Connect.Server;

if (args.Length > 0 && args[0] == "admin")
{
    return await AdminCommands.RunAsync(args[1..], Console.Out, Console.Error);
}

try
{
    await using var app = await ConnectServer.BuildAsync(args);
    await app.RunAsync();
    return 0;
}
catch (ConfigurationProblemsException e)
{
    Console.Error.WriteLine("Connect cannot start; fix these settings:");
    foreach (var problem in e.Problems)
    {
        Console.Error.WriteLine("  - " + problem);
    }
    return 2;
}
