"""The field toolkits are installed in field applications without the server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize("toolkit", ["quota.client", "sync.client", "sync.client.cli"])
def test_a_toolkit_imports_nothing_of_the_server(toolkit):
    probe = (
        f"import sys, {toolkit}\n"
        "server = [name for name in sys.modules if name == 'tracker'"
        " or name.startswith(('tracker.', 'celery', 'flask_login', 'flask_babel'))"
        " or name in ('quota.models', 'sync.models', 'allocation')]\n"
        "print(','.join(sorted(server)))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert result.stdout.strip() == ""
