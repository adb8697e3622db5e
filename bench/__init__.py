"""Benchmarks for Mosic: plain scripts, not tests. See bench/README.md."""
