"""A site's backlog of raw data files, as the replay tests write it, drain it and count what
main applied of it."""

from __future__ import annotations

from typing import Any

import httpx

from ccat_api.buffering.worker import SiteWorker
from ccat_api.devstack.stack import Stack
from tests.support import eventually, fetchval

FILE = {
    "size_bytes": 2048,
    "checksum": "sha256:aabbccddeeff0011",
    "file_type": "fits",
    "instrument_module_id": 1,
}


async def post_file(http: httpx.AsyncClient, eou: str, path: str) -> dict[str, Any]:
    r = await http.post(
        "/raw_data_files",
        json={
            **FILE,
            "name": path.rsplit("/", 1)[-1],
            "relative_path": path,
            "executed_obs_unit_id": eou,
        },
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


async def applied_on_main(stack: Stack, site: str) -> int:
    return int(
        await fetchval(
            stack.main_db.dsn(), "SELECT count(*) FROM applied_transactions WHERE site = $1", site
        )
    )


async def drain(worker: SiteWorker, stack: Stack, *, timeout_s: float = 60) -> None:
    """Run the processor until the stream is empty, then the tracker until all is visible."""

    async def settled() -> bool:
        await worker.processor.run_once()
        stack.wait_replica_caught_up()
        await worker.tracker.run_once()
        return await worker.processor.backlog() == (0, 0)

    await eventually(settled, timeout_s=timeout_s, interval_s=0)
