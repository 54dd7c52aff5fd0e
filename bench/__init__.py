"""Fan-out benchmarks: real Daphne processes, real Redis, real `websockets` clients (docs/BENCHMARKS.md)."""
