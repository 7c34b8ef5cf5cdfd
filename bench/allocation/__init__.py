"""Benchmark of the allocation domain: sacct import and the ledger."""
