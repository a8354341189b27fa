"""Buffer a backlog through a gateway's HTTP API, as instruments would: ``fill`` (used by the
drain phases of ``bench.run`` and by ``bench.reads`` and ``bench.retention``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import orjson

from bench.load import ClientError, RawClient, percentile
from bench.run_config import FILES_PATH, START_BODY, START_PATH


async def fill(
    base_url: str,
    token: str,
    count: int,
    concurrency: int,
    *,
    accepted: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Buffer ``count`` transactions through the API, ``concurrency`` clients back to back:
    pairs of an executed-obs-unit start and one raw data file in it (the file's transaction
    depends on the start's, as an instrument's would). Each 201 answer (id, tx_id) goes to
    ``accepted`` when given, for checks that need to know what was acknowledged."""
    client = RawClient(
        base_url,
        pool=concurrency,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )
    latencies_ms: list[float] = []
    errors: list[str] = []
    pairs = iter(range((count + 1) // 2))

    async def post(path: str, body: bytes) -> dict[str, Any] | None:
        started = time.perf_counter()
        try:
            response = await client.request("POST", path, body)
        except ClientError as exc:
            errors.append(f"{path}: {exc}")
            return None
        if response.status != 201:
            errors.append(f"{path}: HTTP {response.status} {response.body[:200]!r}")
            return None
        latencies_ms.append((time.perf_counter() - started) * 1000)
        answer: dict[str, Any] = orjson.loads(response.body)
        if accepted is not None:
            accepted.append({"path": path, **answer})
        return answer

    async def worker() -> None:
        for pair in pairs:
            started = await post(START_PATH, START_BODY)
            if started is None or 2 * pair + 1 >= count:
                continue
            eou_id = started["id"]
            await post(
                FILES_PATH,
                orjson.dumps(
                    {
                        "name": f"scan_{pair}.fits",
                        "relative_path": f"bench/{eou_id}/scan_{pair}.fits",
                        "size_bytes": 52_428_800,
                        "checksum": f"sha256:{pair:064x}",
                        "file_type": "fits",
                        "instrument_module_id": 1,
                        "executed_obs_unit_id": eou_id,
                    }
                ),
            )

    started = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    finally:
        await client.aclose()
    elapsed_s = time.perf_counter() - started
    return {
        "requests": count,
        "ok": len(latencies_ms),
        "errors": len(errors),
        "error_samples": errors[:5],
        "elapsed_s": round(elapsed_s, 2),
        "achieved_per_s": round(len(latencies_ms) / elapsed_s, 1),
        "p50_ms": round(percentile(latencies_ms, 50), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
    }
