"""Serve the app the naive way: Flask's built-in development server, one thread."""

from __future__ import annotations

import argparse
import logging

from werkzeug.serving import run_simple

from tracker import create_app


def main() -> None:
    """Serve create_app() on 127.0.0.1:PORT with threaded=False until stopped."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    port = parser.parse_args().port
    # No per-request log lines: gunicorn's access log is off too.
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    run_simple("127.0.0.1", port, create_app(), threaded=False)


if __name__ == "__main__":
    main()
