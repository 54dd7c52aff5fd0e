"""Real processes and real clients for the tests and the benchmarks: servers, staff, spectators."""
