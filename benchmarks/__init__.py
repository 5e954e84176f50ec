"""Benchmarks: each measures Agency against a baseline in the same run and prints ratios, never asserts."""
