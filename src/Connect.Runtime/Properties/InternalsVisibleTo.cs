using System.Runtime.CompilerServices;

// The cgroup path, format and parsing helpers are internal (not part of the runtime's contract) but are tested
// directly, because a real cgroup v2 hierarchy is not available on every test machine.
[assembly: InternalsVisibleTo("Connect.Runtime.Tests")]
