"""Benchmarks for the Instance Tracker."""
