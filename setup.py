"""Packaging for the Instance Tracker.

A wheel ships every template, static file, compiled translation and the built
front-end libraries; build those first (``make assets translations``, or
``make dist`` for all of it and the wheel).
"""

import sys
from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).resolve().parent
# What a wheel cannot do without, and how to make it.
BUILT = {
    "tracker/static/vendor/.built": "bash scripts/build-assets",
    "tracker/translations/fr/LC_MESSAGES/messages.mo": (
        "pybabel compile -d tracker/translations"
    ),
}
BUILDING = {"bdist_wheel", "build", "build_py", "install", "sdist", "bdist"}


def requirements() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith(("#", "-"))]


def require_built_assets() -> None:
    missing = [command for path, command in BUILT.items() if not (ROOT / path).exists()]
    if missing and BUILDING & set(sys.argv[1:]):
        sys.exit("setup.py: build the assets first: " + " && ".join(missing))


require_built_assets()
setup(
    name="instance-tracker",
    version="0.1.0",
    description="Look after a fleet of mostly-offline deployments.",
    packages=find_packages(include=["tracker*", "quota*", "sync*", "allocation*"]),
    include_package_data=True,
    package_data={
        "tracker": [
            "templates/**/*",
            "static/**/*",
            "translations/**/*",
            "migrations/*",
            "migrations/**/*",
        ],
        "quota": ["templates/**/*"],
        "sync": ["templates/**/*", "static/**/*"],
        "allocation": ["templates/**/*", "static/**/*"],
    },
    python_requires=">=3.11",
    install_requires=requirements(),
    entry_points={"console_scripts": ["manage_tracker = tracker.cli:main"]},
)
