"""Service settings: one frozen dataclass, filled from flags or ITEMSTORE_* variables.

A ``Config`` checks itself when made: ``Config(workers=0)`` raises
``ConfigError``, with the message the command line prints, wherever it is made
(the CLI, ``create_app(Config(...))``, a test).

Each backend's settings are plain fields named after it (``sqlite_*``,
``dynamodb_*``); a new backend adds its fields and their checks here, and its
flags in ``cli``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from itemstore_wire.contract import Limits

from .access.tokens import TOKEN68
from .backends.registry import BACKENDS
from .connections import default_max_connections

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
MAX_VALUE_BYTES: Final = 400_000  # a DynamoDB item holds at most 400 KB
_ORIGIN: Final = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s]+")


class ConfigError(ValueError):
    """A setting is out of range; the message says which, as its flag, and why."""


def _one_of(names: Sequence[str]) -> str:
    """``a, b or c``."""
    return " or ".join([", ".join(names[:-1]), names[-1]] if len(names) > 1 else names)


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    backend: str = "sqlite"
    """A name in ``backends.registry.BACKENDS``."""
    sqlite_path: str = "itemstore.sqlite3"
    dynamodb_endpoint: str | None = None
    dynamodb_region: str = "us-east-1"
    dynamodb_table: str = "itemstore"
    dynamodb_create_table: bool = False
    dynamodb_shards: int = 8
    workers: int = 1
    token: str | None = None
    """The bootstrap admin key; None: auth is on only once access keys exist."""
    key_refresh: float = 2.0
    """Seconds between reloads of the access keys: the bound within which a
    key revoked elsewhere stops working here."""
    cors_origins: tuple[str, ...] = ()
    """Origins whose pages may call the service (``*``: any); none: CORS off."""
    metrics_port: int | None = None
    """A second port serving only ``/metrics``, without a token."""
    coalesce: bool = True
    log_level: str = "info"
    access_log: bool = False
    shutdown_timeout: float = 20.0
    read_timeout: float = 30.0
    """Seconds a request head, and then its body, may take to arrive."""
    write_timeout: float = 5.0
    """Seconds an answer may wait for a client that reads none of it."""
    max_connections: int = field(default_factory=default_max_connections)
    """Open client connections per worker; by default the file descriptor
    limit minus a reserve."""
    limits: Limits = field(default_factory=Limits)
    # Fail fast (see deadlines, breaker, admission).
    request_timeout: float = 5.0
    """Seconds within which every data request is answered (503 past them)."""
    max_inflight: int = 128
    """Requests one worker handles at once; past it, 503 ``overloaded``."""
    max_queue_delay: float = 0.005
    """Seconds of work a batch queue may hold past its next round of batches
    before new requests are refused with 503 ``overloaded``."""
    max_loop_lag: float = 1.0
    """Seconds the event loop may run late before new requests are refused
    with 503 ``overloaded``. Larger than the queue's bound: a loop also runs
    late when the machine is busy with other work."""
    breaker_failures: int = 5
    """Backend calls failed in a row that open the circuit breaker."""
    console: bool = True
    """Serve the browser console at ``/console/``."""

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ConfigError(problem)

    def _problem(self) -> str | None:
        """What is wrong, said for a person, or None. The flags' names are
        used because most settings come from them (or their variables)."""
        if self.backend not in BACKENDS:
            return f"--backend must be {_one_of(list(BACKENDS))}, not {self.backend!r}"
        if self.log_level not in LOG_LEVELS:
            return f"--log-level must be {_one_of(LOG_LEVELS)}, not {self.log_level!r}"
        if self.shutdown_timeout < 0:
            return f"--shutdown-timeout must be 0 or more, not {self.shutdown_timeout}"
        for flag, seconds in (
            ("--read-timeout", self.read_timeout),
            ("--write-timeout", self.write_timeout),
        ):
            if not seconds > 0:
                return f"{flag} must be more than 0 seconds, not {seconds}"
        if self.max_connections < 1:
            return f"--max-connections must be at least 1, not {self.max_connections}"
        if not 0 < self.port < 65536:
            return f"--port must be 1..65535, not {self.port}"
        if self.token is not None and not TOKEN68.fullmatch(self.token):
            return (
                "--token must be 1 or more letters, digits or -._~+/ (no spaces, newlines or"
                " other characters); an empty token would leave the service open: leave it out"
                " to run without one"
            )
        if not self.key_refresh > 0:
            return f"key_refresh must be more than 0 seconds, not {self.key_refresh}"
        if self.metrics_port is not None and not (
            0 < self.metrics_port < 65536 and self.metrics_port != self.port
        ):
            return f"--metrics-port must be 1..65535 and not --port, not {self.metrics_port}"
        for origin in self.cors_origins:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                return (
                    f"--cors-origin must be '*' or scheme://host[:port]"
                    f" (no path, no trailing '/'), not {origin!r}"
                )
        if self.workers < 1:
            return f"--workers must be at least 1, not {self.workers}"
        if self.dynamodb_shards < 1:
            return f"--dynamodb-shards must be at least 1, not {self.dynamodb_shards}"
        if not self.request_timeout > 0:
            return f"--request-timeout must be more than 0 seconds, not {self.request_timeout}"
        if self.max_inflight < 1:
            return f"--max-inflight must be at least 1, not {self.max_inflight}"
        if not self.max_queue_delay > 0:
            return f"--max-queue-delay must be more than 0 seconds, not {self.max_queue_delay}"
        if not self.max_loop_lag > 0:
            return f"--max-loop-lag must be more than 0 seconds, not {self.max_loop_lag}"
        if self.breaker_failures < 1:
            return f"--breaker-failures must be at least 1, not {self.breaker_failures}"
        if not 0 < self.limits.max_value_bytes <= MAX_VALUE_BYTES:
            return (
                f"--max-value-bytes must be 1..{MAX_VALUE_BYTES}"
                " (a DynamoDB item holds at most 400 KB)"
            )
        limits = self.limits
        if not 0 < limits.max_batch_bytes <= limits.max_request_bytes:
            return f"--max-batch-bytes must be 1..{limits.max_request_bytes} (the request limit)"
        return None
