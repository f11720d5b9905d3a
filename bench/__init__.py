"""Berth benchmarks: they print ratios against the raw registry; they are not timed tests."""
