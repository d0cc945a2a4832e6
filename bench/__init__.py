"""Benchmarks that run the real app against the local stack and the Microsoft simulator (`bench/export`, ...)."""
