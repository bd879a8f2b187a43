"""Real servers that speak outside systems' wire formats on loopback, for tests and benchmarks."""
