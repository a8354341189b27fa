"""What every critical write needs while it is prepared: who asks, what they can read, and a
builder for the envelope. Handlers get one per request."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from ccat_api.buffering.builder import TransactionBuilder
from ccat_api.buffering.envelope import Principal
from ccat_api.buffering.gateway import WriteGateway
from ccat_api.buffering.idempotency import IdempotencyClaim
from ccat_api.buffering.reads import MergedReader
from ccat_api.domain.references import ReferenceData
from ccat_api.errors import InvalidReference, NotFound


@dataclass(frozen=True)
class WriteContext:
    site_name: str
    principal: Principal
    reader: MergedReader
    references: ReferenceData
    gateway: WriteGateway
    claim: IdempotencyClaim | None = None

    def builder(self) -> TransactionBuilder:
        return TransactionBuilder(
            self.site_name, self.principal, idempotency_key=self.claim.key if self.claim else None
        )

    async def require_module(self, module_id: int, field: str) -> int:
        module = await self.references.instrument_module(module_id)
        if module is None:
            raise InvalidReference.missing(field, "instrument module", module_id)
        return module.instrument_id

    async def reference_row(self, table: str, row_id: int, field: str, what: str) -> dict[str, Any]:
        """A reference-data row the body names in ``field`` (a route, a data location:
        written at main, read through the cache), or a 422 naming it."""
        row = await self.references.row(table, row_id)
        if row is None:
            raise InvalidReference.missing(field, what, row_id)
        return row

    async def existing(self, table: str, pk: UUID, what: str) -> dict[str, Any]:
        """The record a write changes, as this site reads it (buffered ones too), or a 404."""
        found = await self.reader.get(table, pk)
        if found is None:
            raise NotFound(f"{what} {pk} not found")
        return found

    async def referenced(self, table: str, pk: UUID, field: str, what: str) -> dict[str, Any]:
        """A record the body names in ``field`` (buffered ones too), or a 422 naming it."""
        found = await self.reader.get(table, pk)
        if found is None:
            raise InvalidReference.missing(field, what, pk)
        return found
