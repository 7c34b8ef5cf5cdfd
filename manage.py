#!/usr/bin/env python
"""Manage the Instance Tracker: ``python manage.py --help``."""

from tracker.cli import main

if __name__ == "__main__":
    main()
