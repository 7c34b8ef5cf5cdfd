"""Masking of instance uuids (each instance's credential) in logged text."""

from __future__ import annotations

import re
from urllib.parse import unquote

UUID_IN_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F-]{27}")
MASK = "<uuid>"


def mask_uuids(text: str) -> str:
    """``text`` with every uuid-shaped run replaced by ``<uuid>``."""
    return UUID_IN_TEXT.sub(MASK, text)


def mask_uri(uri: str) -> str:
    """A request path or URL decoded, then masked: no percent-encoding hides
    a uuid from the mask."""
    return mask_uuids(unquote(uri, errors="replace"))
