"""Logs: one JSON object per line on stderr, bearer tokens masked, the
request id and access key id of the request being handled on every line
written inside it."""

from __future__ import annotations

import contextvars
import logging
import re
import sys
from datetime import UTC, datetime
from typing import IO, Any, Final

import orjson
from aiohttp.http_exceptions import HttpProcessingError

REQUEST_ID: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "itemstore_request_id", default=None
)

KEY_ID: Final[contextvars.ContextVar[str | None]] = contextvars.ContextVar(
    "itemstore_key_id", default=None
)
"""The access key id of the request being handled (never its secret)."""

# Attributes every LogRecord has; anything else came in through ``extra=``.
_BLANK_RECORD: Final = logging.LogRecord("", 0, "", 0, "", None, None)
_RECORD_FIELDS: Final = frozenset(_BLANK_RECORD.__dict__) | {"message", "asctime", "taskName"}
_BEARER: Final = re.compile(r"(?i)\bbearer\s+\S+")


def _mask(text: str) -> str:
    return _BEARER.sub("Bearer [redacted]", text)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: ts, level, logger, msg, request_id (inside
    a request), the record's ``extra`` fields and the exception if any.
    Anything looking like a bearer token is masked."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": _mask(record.getMessage()),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            doc["request_id"] = request_id
        key_id = KEY_ID.get()
        if key_id is not None:
            doc["key_id"] = key_id
        for name, value in record.__dict__.items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                doc[name] = (
                    _BEARER.sub("Bearer [redacted]", value) if isinstance(value, str) else value
                )
        if record.exc_info:
            doc["exc"] = _mask(self.formatException(record.exc_info))
        return orjson.dumps(doc, default=str).decode()


class MalformedRequestFilter(logging.Filter):
    """aiohttp logs a request it cannot parse at error level, with the
    offending bytes (which may hold a token or a value): that is the client's
    mistake, so it becomes one info line naming only the kind of error."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if record.name == "aiohttp.server" and isinstance(error, HttpProcessingError):
            record.msg = f"refused a malformed HTTP request: {type(error).__name__}"
            record.args, record.exc_info, record.exc_text = None, None, None
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def configure_logging(level: str, stream: IO[str] | None = None) -> None:
    """Send every log record, as JSON lines, to ``stream`` (stderr by default)
    at ``level`` (debug, info, warning, error, critical; any case). Debug is
    for itemstore's own loggers only: the libraries' debug output (botocore's
    above all) holds request bodies, item values and credentials."""
    levels = logging.getLevelNamesMapping()
    if level.upper() not in levels:
        raise ValueError(f"unknown log level {level!r}; use one of debug, info, warning, error")
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(MalformedRequestFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(levels[level.upper()], logging.INFO))
    logging.getLogger("itemstore").setLevel(levels[level.upper()])
