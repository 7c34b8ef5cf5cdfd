"""Every model module of the application, for create_all and migrations."""

import importlib
import importlib.util

from tracker.settings import KNOWN_DOMAINS, REGISTRY

CORE_MODEL_MODULES = (
    "tracker.audit.models",
    "tracker.auth.models",
    "tracker.batch.models",
    "tracker.notifications.models",
)


def import_all_models() -> None:
    """Import the core models and each part's ``models`` module, if it has one."""
    for name in CORE_MODEL_MODULES:
        importlib.import_module(name)
    for part in (REGISTRY, *KNOWN_DOMAINS):
        if importlib.util.find_spec(f"{part}.models") is not None:
            importlib.import_module(f"{part}.models")
