"""Structured logs: one JSON object per line (or plain text for a terminal), each carrying
the request id and the transaction id of the work it is about when there is one.

The ids live in context variables set by the request middleware and by the write path, so
every log line written while serving a request carries them without being passed along.
"""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar
from typing import TextIO

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("request_id", default=None)
TX_ID: ContextVar[str | None] = ContextVar("tx_id", default=None)


class ContextFilter(logging.Filter):
    """Adds ``request_id`` and ``tx_id`` to every record (a record's own ``extra`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = REQUEST_ID.get()
        if not hasattr(record, "tx_id"):
            record.tx_id = TX_ID.get()
        return True


def log_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """The handler every process logs through (to ``stream``, stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    if log_format == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
                rename_fields={
                    "levelname": "level",
                    "name": "logger",
                    "asctime": "time",
                    "process": "pid",
                },
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter(
                "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s tx=%(tx_id)s]: %(message)s"
            )
        )
    return handler


def configure_logging(level: str, log_format: str) -> None:
    root = logging.getLogger()
    root.handlers[:] = [log_handler(log_format)]
    root.setLevel(level)
