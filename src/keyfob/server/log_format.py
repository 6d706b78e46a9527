"""Log records as JSON lines (the default) or plain text for a terminal.

The standard library's ``logging`` with a small JSON formatter rather than structlog:
keyfob's records are already structured (the request and security observers hand their
fields over in ``extra={"keyfob": {...}}``), uvicorn and the libraries log through
``logging`` anyway, and one formatter for all of them keeps one line format without a
dependency (docs/dependencies.md).

Only the fields the observers chose are written, plus the message: nothing is copied
from a request.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Final

from ..settings.model import LogFormat

__all__ = ["JsonFormatter", "TextFormatter", "logging_config"]

_FIELDS_KEY: Final = "keyfob"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the keyfob fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _utc(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
        }
        fields = getattr(record, _FIELDS_KEY, None)
        if isinstance(fields, dict):
            out.update(fields)
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, separators=(",", ":"), default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value …`` for a human at a terminal."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_utc(record.created)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = getattr(record, _FIELDS_KEY, None)
        if isinstance(fields, dict):
            extra = " ".join(
                f"{k}={v}" for k, v in fields.items() if k not in {"event"} and v is not None
            )
            line = f"{line}  {extra}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        return line


def _utc(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def logging_config(
    fmt: LogFormat, level: str = "info", *, request_log: bool = True
) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for ``keyfob serve`` (handed to uvicorn, which
    applies it in every worker): every logger, uvicorn's included, to stderr in ``fmt``.

    uvicorn's own access log is switched off (keyfob's ``keyfob.request`` lines replace
    it); ``request_log=False`` turns those off too.
    """
    formatter = (
        "keyfob.server.log_format.JsonFormatter"
        if fmt == "json"
        else ("keyfob.server.log_format.TextFormatter")
    )
    upper = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"keyfob": {"()": formatter}},
        "handlers": {
            "keyfob": {
                "class": "logging.StreamHandler",
                "formatter": "keyfob",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "keyfob": {"handlers": ["keyfob"], "level": upper, "propagate": False},
            "uvicorn": {"handlers": ["keyfob"], "level": upper, "propagate": False},
            "uvicorn.error": {"level": upper},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
            **({} if request_log else {"keyfob.request": {"level": "WARNING"}}),
        },
        "root": {"handlers": ["keyfob"], "level": upper},
    }
