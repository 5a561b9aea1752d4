"""Service settings: one frozen dataclass, filled from flags or ITEMSTORE_* variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from itemstore_wire.contract import Limits

BackendName = Literal["sqlite", "dynamodb"]


@dataclass(frozen=True, slots=True)
class Config:
    host: str = "127.0.0.1"
    port: int = 8080
    backend: BackendName = "sqlite"
    sqlite_path: str = "itemstore.sqlite3"
    dynamodb_endpoint: str | None = None
    dynamodb_region: str = "us-east-1"
    dynamodb_table: str = "itemstore"
    dynamodb_create_table: bool = False
    dynamodb_shards: int = 8
    workers: int = 1
    token: str | None = None
    coalesce: bool = True
    log_level: str = "info"
    access_log: bool = False
    shutdown_timeout: float = 20.0
    limits: Limits = field(default_factory=Limits)
