"""Packaging for the Instance Tracker."""

from pathlib import Path

from setuptools import find_packages, setup


def requirements() -> list[str]:
    lines = Path(__file__).with_name("requirements.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith(("#", "-"))]


setup(
    name="instance-tracker",
    version="0.1.0",
    description="Look after a fleet of mostly-offline deployments.",
    packages=find_packages(include=["tracker*", "quota*", "sync*", "allocation*"]),
    include_package_data=True,
    package_data={
        "tracker": ["templates/**/*", "static/**/*", "migrations/*", "migrations/**/*"],
    },
    python_requires=">=3.11",
    install_requires=requirements(),
    entry_points={"console_scripts": ["manage_tracker = tracker.cli:main"]},
)
