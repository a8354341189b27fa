"""Row values to JSON and back, driven by the table's column types.

Buffered values are JSON in Redis and in the replay payload (PostgreSQL parses them with
jsonb_populate_recordset); reads decode them back to the same Python types the replica
returns, so merged rows sort and compare identically whichever side they came from.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _identity(value: Any) -> Any:
    return value


def _encode_datetime(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _decode_datetime(value: Any) -> Any:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def _encode_uuid(value: Any) -> Any:
    return str(value) if isinstance(value, uuid.UUID) else value


def _decode_uuid(value: Any) -> Any:
    return uuid.UUID(value) if isinstance(value, str) else value


def _codec_for(python_type: type | None) -> tuple[Encoder, Decoder]:
    if python_type is datetime:
        return _encode_datetime, _decode_datetime
    if python_type is uuid.UUID:
        return _encode_uuid, _decode_uuid
    return _identity, _identity


class RowCodec:
    def __init__(self, table: Table) -> None:
        self.table = table
        self._encoders: dict[str, Encoder] = {}
        self._decoders: dict[str, Decoder] = {}
        for column in table.columns:
            try:
                python_type: type | None = column.type.python_type
            except NotImplementedError:
                python_type = None
            self._encoders[column.name], self._decoders[column.name] = _codec_for(python_type)

    @property
    def columns(self) -> frozenset[str]:
        return frozenset(self._encoders)

    def encode(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: (None if v is None else self._encoders[k](v)) for k, v in row.items()}

    def decode(self, data: Mapping[str, Any]) -> dict[str, Any]:
        return {
            k: (None if v is None else self._decoders[k](v))
            for k, v in data.items()
            if k in self._decoders
        }

    def encode_value(self, column: str, value: Any) -> Any:
        return None if value is None else self._encoders[column](value)

    def decode_value(self, column: str, value: Any) -> Any:
        return None if value is None else self._decoders[column](value)
