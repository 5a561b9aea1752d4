"""AWS Signature Version 4 for DynamoDB's JSON protocol (POST / with a JSON
body): the Authorization header botocore's ``SigV4Auth`` would compute for the
same request, at a fraction of its cost. The signing key is derived once per
(secret, date, region, service) and cached."""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

ALGORITHM = "AWS4-HMAC-SHA256"


@dataclass(frozen=True, slots=True)
class Credentials:
    """One frozen set of AWS credentials (``token`` for temporary ones)."""

    access_key: str
    secret_key: str
    token: str | None = None


@lru_cache(maxsize=16)
def signing_key(secret_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key of one day (``date`` as YYYYMMDD), region and service."""
    key = hmac.digest(f"AWS4{secret_key}".encode(), date.encode(), "sha256")
    for part in (region, service, "aws4_request"):
        key = hmac.digest(key, part.encode(), "sha256")
    return key


def amz_date(now: datetime | None = None) -> str:
    """The X-Amz-Date of ``now`` (default: the current UTC time)."""
    if now is None:
        return _amz_date_of_second(int(time.time()))
    return now.strftime("%Y%m%dT%H%M%SZ")


@lru_cache(maxsize=2)
def _amz_date_of_second(second: int) -> str:
    # Formatted once per second, not once per call.
    return datetime.fromtimestamp(second, UTC).strftime("%Y%m%dT%H%M%SZ")


def sign(
    credentials: Credentials,
    *,
    region: str,
    service: str,
    host: str,
    headers: dict[str, str],
    body: bytes,
    timestamp: str,
) -> dict[str, str]:
    """The headers to send for a ``POST /`` of ``body`` to ``host``: ``headers``
    (whose names must be lowercase and values plain) plus host, x-amz-date,
    x-amz-security-token (temporary credentials) and authorization; every one
    of them is signed."""
    signed = {**headers, "host": host, "x-amz-date": timestamp}
    if credentials.token:
        signed["x-amz-security-token"] = credentials.token
    names = sorted(signed)
    signed_headers = ";".join(names)
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            *(f"{name}:{' '.join(signed[name].split())}" for name in names),
            "",
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    date = timestamp[:8]
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [ALGORITHM, timestamp, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = signing_key(credentials.secret_key, date, region, service)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    signed["authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope},"
        f" SignedHeaders={signed_headers}, Signature={signature}"
    )
    return signed
