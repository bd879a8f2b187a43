"""Benchmarks behind `kwx bench NAME`; each returns figures printed as one JSON line."""
