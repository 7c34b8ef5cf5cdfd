"""Installing the product: a built wheel ships every template, static file,
compiled translation and front-end library; a virtualenv made from
requirements.txt alone runs the installed app, its pages and a Celery worker
on Redis."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.celery_processes import CeleryProcess
from tests.services import start_redis

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("templates", "static", "translations")


def run(*command, **options) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=900, **options
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel .`` builds from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "-q",
        "-w",
        str(out),
        ".",
        cwd=ROOT,
    )
    (built,) = out.glob("instance_tracker-*.whl")
    return built


@pytest.fixture(scope="session")
def wheelhouse() -> Path:
    """Wheels of requirements.txt, downloaded once and kept between runs (only
    what requirements.txt resolves to is in it)."""
    requirements = (ROOT / "requirements.txt").read_bytes()
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = (
        cache
        / "instance-tracker"
        / ("wheels-" + hashlib.sha256(requirements).hexdigest()[:16])
    )
    if not (folder / ".complete").exists():
        run(
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "-w",
            str(folder),
            "-r",
            str(ROOT / "requirements.txt"),
        )
        (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def installed(tmp_path_factory, wheel, wheelhouse) -> Path:
    """A fresh virtualenv (no system site-packages) holding requirements.txt
    and the wheel; returns its bin folder."""
    venv = tmp_path_factory.mktemp("venv")
    base = getattr(sys, "_base_executable", sys.executable)
    run(base, "-m", "venv", str(venv))
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--no-compile",
        "--no-index",
        "--find-links",
        str(wheelhouse),
    ]
    run(*pip, "-r", str(ROOT / "requirements.txt"))
    run(*pip, "--no-deps", str(wheel))
    return venv / "bin"


def clean_environment(**extra: str) -> dict[str, str]:
    """No PYTHONPATH or settings from this checkout: only what is installed."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TRACKER_", "PYTHON", "VIRTUAL_ENV"))
    }
    return {**env, **extra}


def source_files(package: str) -> set[str]:
    """Templates, static files and compiled catalogues of ``package``."""
    files = set()
    for part in SHIPPED:
        folder = ROOT / package / part
        files |= {
            path.relative_to(ROOT).as_posix()
            for path in folder.rglob("*")
            if path.is_file()
            and not path.name.startswith(".")
            and "__pycache__" not in path.parts
        }
    return files


def test_the_wheel_ships_every_template_static_file_and_translation(wheel):
    shipped = set(zipfile.ZipFile(wheel).namelist())
    expected = set().union(
        *(source_files(p) for p in ("tracker", "quota", "sync", "allocation"))
    )
    assert "tracker/static/vendor/chart.umd.min.js" in expected
    assert "tracker/translations/fr/LC_MESSAGES/messages.mo" in expected
    assert "allocation/static/allocation/usage-chart.js" in expected
    assert expected - shipped == set()
    assert any(name.startswith("tracker/migrations/versions/") for name in shipped)


def test_the_installed_wheel_serves_every_page(installed, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    # -P: the script's own folder (tests/, which has quota/ and sync/ packages)
    # is not put on the path; only the installed packages are imported.
    result = run(
        str(installed / "python"),
        "-P",
        str(ROOT / "tests" / "installed_pages.py"),
        str(instance),
        cwd=tmp_path,
        env=clean_environment(),
    )
    statuses = json.loads(result.stdout)
    assert {"/", "/statistics", "/quotas", "/sync", "/allocation/", "/account"} <= set(
        statuses
    )
    assert "/static/vendor/leaflet/leaflet.js" in statuses
    assert {path: code for path, code in statuses.items() if code != 200} == {}


def test_requirements_alone_import_the_redis_transport(installed, tmp_path):
    where = run(
        str(installed / "python"),
        "-c",
        "import tracker; print(tracker.__file__)",
        cwd=tmp_path,
        env=clean_environment(),
    )
    assert str(installed.parent) in where.stdout  # not this checkout
    run(
        str(installed / "python"),
        "-c",
        "import kombu.transport.redis",
        cwd=tmp_path,
        env=clean_environment(),
    )


def test_a_worker_of_the_installed_app_starts_on_redis(installed, tmp_path):
    server = start_redis()
    env = clean_environment(
        TRACKER_INSTANCE_PATH=str(tmp_path / "instance"),
        TRACKER_CELERY_BROKER_URL=server.url,
        TRACKER_SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'worker.sqlite'}",
    )
    command = [str(installed / "manage_tracker"), "runworker", "1"]
    worker = CeleryProcess([], env, tmp_path / "worker.log", command=command)
    try:
        worker.wait_for("ready.", timeout=60)
        assert "Connected to redis://" in worker.output()
    finally:
        worker.stop()
        server.stop()
