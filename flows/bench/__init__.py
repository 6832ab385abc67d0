"""Benchmarks and fault matrices: commands that print their figures."""
