"""What a request may send, exactly: the base of every request body and the field types of
bodies, paths and query strings.

Bodies are strict: a JSON number is not a string, ``true`` is not ``1``, ``1.0`` is not an
id. The few fields where text is the only JSON form of a value (UUIDs, timestamps) say so
here, and accept only that form. Path and query parameters arrive as text, so their types
name the one spelling each accepts (decimal digits, an ISO date, a hyphenated UUID); the lax
parser would read ``1.0`` as 1 and ``0`` as 1970-01-01.
"""

from __future__ import annotations

import math
import re
from datetime import date
from typing import Annotated, Any
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field
from pydantic import types as pydantic_types

INT64_MAX = 2**63 - 1
INT32_MAX = 2**31 - 1
# Sizes stay exact in every JSON client (JavaScript numbers) and sums stay inside bigint.
MAX_FILE_SIZE_BYTES = 2**53
CONDITIONS_MAX_DEPTH = 6
CONDITIONS_MAX_STRING = 10_000

_UUID_TEXT = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)
_TIMESTAMP_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}.*")
_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")
# Nineteen digits cover every int64; a longer run is refused before int() has to read it.
_DIGITS = re.compile(r"[0-9]{1,19}")


class Strict(BaseModel):
    """Request bodies: JSON types as JSON has them (no coercion), no unknown fields, finite
    numbers only."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def examples(*items: dict[str, Any]) -> ConfigDict:
    """Examples for the OpenAPI document; the rest of the config comes from Strict."""
    return ConfigDict(json_schema_extra={"examples": list(items)})


def json_safe(value: Any, path: str = "conditions", depth: int = 0) -> Any:
    """Free-form JSON must survive PostgreSQL's jsonb and every hop in between: no NUL
    characters (jsonb refuses them), finite numbers, 64-bit integers, bounded depth."""
    if depth > CONDITIONS_MAX_DEPTH:
        raise ValueError(f"{path}: nested deeper than {CONDITIONS_MAX_DEPTH} levels")
    if isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ValueError(f"{path}: a key contains a NUL character")
            json_safe(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            json_safe(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, str):
        if "\x00" in value:
            raise ValueError(f"{path}: contains a NUL character")
        if len(value) > CONDITIONS_MAX_STRING:
            raise ValueError(f"{path}: longer than {CONDITIONS_MAX_STRING} characters")
    elif isinstance(value, bool) or value is None:
        pass
    elif isinstance(value, int):
        if not -INT64_MAX - 1 <= value <= INT64_MAX:
            raise ValueError(f"{path}: integer outside the 64-bit range")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path}: numbers must be finite")
    else:  # pragma: no cover - JSON decoding produces nothing else
        raise ValueError(f"{path}: unsupported value {type(value).__name__}")
    return value


def _uuid_text(value: Any) -> Any:
    if isinstance(value, str):
        if not _UUID_TEXT.fullmatch(value):
            raise ValueError("must be a UUID written as 8-4-4-4-12 hexadecimal digits")
        return UUID(value)
    if isinstance(value, UUID):
        return value
    raise ValueError("must be a UUID as a string")


def _timestamp_text(value: Any) -> Any:
    # Lax parsing would read 0 or "0" as 1970-01-01; a timestamp is ISO 8601 text only.
    if isinstance(value, str) and not _TIMESTAMP_TEXT.fullmatch(value):
        raise ValueError("must be an ISO 8601 date and time with a UTC offset")
    if not isinstance(value, str) and not hasattr(value, "tzinfo"):
        raise ValueError("must be an ISO 8601 date and time, as a string")
    return value


def _decimal_digits(value: Any) -> Any:
    if isinstance(value, str):
        if not _DIGITS.fullmatch(value):
            raise ValueError("must be a whole number written in decimal digits")
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a whole number")
    return value


def _iso_date(value: Any) -> Any:
    if isinstance(value, str) and not _DATE_TEXT.fullmatch(value):
        raise ValueError("must be an ISO date, YYYY-MM-DD")
    return value


# --- in bodies (strict JSON) -----------------------------------------------------------------

# Marks a field whose JSON form is text that the lax parser reads exactly (an enum's value, a
# timestamp checked to be ISO 8601 first).
LAX = pydantic_types.Strict(strict=False)

# Every integer key on main is a PostgreSQL integer (int4). A larger number names no record,
# and the driver refuses to send it at all (a DataError, not a miss): refused here instead,
# as a 422 naming the field, in bodies, paths and query strings alike.
IntId = Annotated[int, Field(gt=0, le=INT32_MAX)]
# JSON has no UUID type: its text form is the one leniency a strict body allows here.
Uuid = Annotated[UUID, BeforeValidator(_uuid_text)]
Timestamp = Annotated[AwareDatetime, LAX, BeforeValidator(_timestamp_text)]

Name = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f]+$")]
RelativePath = Annotated[
    str, Field(min_length=1, max_length=1024, pattern=r"^[^/\x00-\x1f][^\x00-\x1f]*$")
]
Checksum = Annotated[str, Field(min_length=8, max_length=200, pattern=r"^[A-Za-z0-9:+/=_-]+$")]
Conditions = Annotated[dict[str, Any], Field(max_length=50), AfterValidator(json_safe)]
FileType = Annotated[str, Field(min_length=1, max_length=50, pattern=r"^[A-Za-z0-9._+-]+$")]
Path = Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f]+$")]
Message = Annotated[str, Field(min_length=1, max_length=10_000, pattern=r"^[^\x00]+$")]

# --- in paths and query strings (text) -------------------------------------------------------

# Put it after a parameter's constraints (``Annotated[int, Query(ge=1), DecimalDigits]``):
# FastAPI writes them into the OpenAPI document as JSON Schema only in that order (the other
# way it emits raw gt/le keys that no client understands).
DecimalDigits = BeforeValidator(_decimal_digits)
IdParam = Annotated[int, Field(gt=0, le=INT32_MAX), DecimalDigits]
DateParam = Annotated[date, BeforeValidator(_iso_date)]
