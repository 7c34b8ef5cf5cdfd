"""Load benchmark of the registry API: gunicorn against the single-threaded dev server.

Run it from the repository root with ``.venv/bin/python -m bench.api``.
"""
