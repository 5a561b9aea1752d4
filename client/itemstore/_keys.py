"""Typed keys on the wire: one URL path segment plus ``key_type``.

A key is a ``str``, ``int``, ``float`` or ``bool``. As in a dict, ``1`` and
``1.0`` are the same key; unlike a dict, ``True`` and ``1`` are different keys
(the service never coerces between bool, number and str).
"""

from __future__ import annotations

import math
from urllib.parse import quote

from itemstore_wire.contract import Key

from .errors import ValidationError

KeyTag = tuple[str, str | int | float | bool]
"""A hashable identity of a key that keeps ``True`` apart from ``1``."""


def check_key(key: object) -> Key:
    """Return ``key`` if it is a valid key type; TypeError otherwise (as a dict
    does for unhashable keys), ValidationError for an empty str or a non-finite
    float (the service checks the size limit)."""
    if isinstance(key, str) and not key:
        raise ValidationError(
            "a key must not be empty", status=400, code="invalid-key", title="Invalid key"
        )
    if isinstance(key, str):
        try:
            key.encode()
        except UnicodeEncodeError:
            raise ValidationError(
                f"a key must be Unicode text without lone surrogates, not {key!r}",
                status=400,
                code="invalid-key",
                title="Invalid key",
            ) from None
        return key
    if isinstance(key, bool | int):
        return key
    if isinstance(key, float):
        if not math.isfinite(key):
            raise ValidationError(
                f"a float key must be finite, not {key!r}",
                status=400,
                code="invalid-key",
                title="Invalid key",
            )
        return key
    raise TypeError(f"itemstore keys are str, int, float or bool, not {type(key).__name__}")


def key_text(key: Key) -> str:
    """The key's text as the service parses it for its ``key_type``."""
    if isinstance(key, bool):
        return "true" if key else "false"
    if isinstance(key, float):
        return repr(key)
    return str(key)


def path_segment(key: Key) -> str:
    """The key as ONE percent-encoded path segment. Every reserved character is
    encoded, and dots too, so that ``.`` and ``..`` survive URL normalisation."""
    return quote(key_text(key), safe="").replace(".", "%2E")


def key_tag(key: Key) -> KeyTag:
    """Equal tags for keys the service treats as one (``1``, ``1.0``), distinct
    tags for ``True`` / ``1`` / ``"1"``."""
    if isinstance(key, bool):
        return ("b", key)
    if isinstance(key, str):
        return ("s", key)
    return ("n", key)


def lookup_key(key: object) -> Key | None:
    """The key to look up for ``key in c``: None for a hashable value that is no
    key the service takes (as a dict answers False); TypeError for an
    unhashable one."""
    hash(key)
    try:
        return check_key(key)
    except (TypeError, ValidationError):
        return None
