"""Benchmarks: side-by-side measurements in one run, reported as ratios and absolute figures."""
