"""Crawl benchmark: the crawler against a loopback fleet of fake instances."""
