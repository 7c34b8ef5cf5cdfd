"""Benchmark of the dashboard's list and statistics pages."""
