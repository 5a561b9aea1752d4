"""Access-key tokens: how they are made, read from a header and checked.

A token is ``isk_<id>_<secret>``: ``id`` (16 hex digits) names the stored key,
``secret`` is 256 random bits (``secrets.token_urlsafe(32)``). Only a keyed
BLAKE2b digest of the secret is stored, under a random salt of its own. A
fast hash is enough: a 256-bit random secret cannot be guessed, so a slow KDF
(bcrypt, argon2) would only cost CPU on every request without making an
offline search any harder. Checking a token is one digest and one
constant-time comparison, the same work whether its id is known or not.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Final

PREFIX: Final = "isk_"
_ID_HEX: Final = 16
_SALT_BYTES: Final = 16
_TOKEN: Final = re.compile(
    rf"{PREFIX}(?P<id>[0-9a-f]{{{_ID_HEX}}})_(?P<secret>[A-Za-z0-9_-]{{43}})"
)

TOKEN68: Final = re.compile(r"[A-Za-z0-9._~+/-]+=*")
"""The characters a bearer token may hold (RFC 6750's b64token)."""


@dataclass(frozen=True, slots=True)
class Secret:
    """What is stored of a token: a salt and the digest of its secret."""

    salt: bytes
    digest: bytes

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(_digest(self.salt, secret), self.digest)


def _digest(salt: bytes, secret: str) -> bytes:
    return hashlib.blake2b(secret.encode(), key=salt, digest_size=32).digest()


def new_key_id() -> str:
    return secrets.token_hex(_ID_HEX // 2)


def issue(key_id: str) -> tuple[str, Secret]:
    """A new token for ``key_id`` and the salted digest to store in its place."""
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(_SALT_BYTES)
    return f"{PREFIX}{key_id}_{secret}", Secret(salt, _digest(salt, secret))


def split(token: str) -> tuple[str, str] | None:
    """``(id, secret)`` of a token of the access-key form, else None."""
    match = _TOKEN.fullmatch(token)
    return None if match is None else (match["id"], match["secret"])


DECOY: Final = Secret(b"\0" * _SALT_BYTES, b"\0" * 32)
"""Checked against when a token names no stored key, so that an unknown id
costs the same time as a wrong secret."""
