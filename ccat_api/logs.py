"""Structured logs: one JSON object per line (or plain text for a terminal), each carrying
the request id and the transaction id of the work it is about when there is one.

The ids live in context variables set by the request middleware and by the write path, so
every log line written while serving a request carries them without being passed along.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from typing import Any, TextIO

import orjson
from pythonjsonlogger.core import RESERVED_ATTRS

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


class JsonLineFormatter(logging.Formatter):
    """One JSON object per record: ``time``, ``level``, ``logger``, ``pid``, ``message``,
    then the record's own fields (``extra``, the request and tx ids), then ``exc_info``.

    The fields and names python-json-logger wrote, encoded with orjson: with the access log
    on, every request writes a line, and that formatter took over twice as long per line."""

    _reserved = frozenset(RESERVED_ATTRS) | {"taskName"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
        }
        reserved = self._reserved
        for key, value in record.__dict__.items():
            if key not in reserved:
                line[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        try:
            return orjson.dumps(line, default=str).decode()
        except (TypeError, orjson.JSONEncodeError):  # an integer beyond 64 bits, say
            return json.dumps(line, default=str)


def log_handler(log_format: str, stream: TextIO | None = None) -> logging.Handler:
    """The handler every process logs through (to ``stream``, stderr by default)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    if log_format == "json":
        handler.setFormatter(JsonLineFormatter())
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
