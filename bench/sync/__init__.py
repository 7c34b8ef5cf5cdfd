"""Benchmark sync: 100,000 transactions pushed over REST and imported from files."""
