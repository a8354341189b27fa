"""The campaign's clients: each drives observation life cycles (start a unit, register files,
pack a package, finish the unit) through the site's gateways, one write at a time, with an
Idempotency-Key per write kept across its retries and across gateways. A write is retried
on no answer and on 429/5xx until it is answered or ``give_up_s`` passes; each acknowledged
write is read back at the site at once (read your writes)."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from ccat_api.devstack.chaos.history import History, Kind, Probe, ProbeResult, Write

RETRYABLE = frozenset({429, 500, 502, 503, 504})
RAW_FILE = {"checksum": "sha256:00112233", "file_type": "fits", "instrument_module_id": 1}
OBS_UNIT_ID = 1
MODULE_ID = 1
PAGE_SIZE = 2
MAX_FILES = 100  # a unit has at most 6; more pages than this is a paging loop


@dataclass(frozen=True)
class WorkloadConfig:
    clients: int = 6
    writes: int = 500  # life cycles start until this many writes have been made
    attempt_timeout_s: float = 10.0
    give_up_s: float = 90.0
    max_retry_wait_s: float = 2.0


class Workload:
    def __init__(
        self, config: WorkloadConfig, urls: list[str], token: str, run_id: str, seed: int
    ) -> None:
        self.config = config
        self.urls = urls
        self.run_id = run_id
        self.seed = seed
        self.history = History()
        self.started_writes = 0
        self.keep_going = True  # the campaign clears it once the faults are done
        self._http = httpx.AsyncClient(
            headers={"Authorization": f"Bearer {token}"},
            timeout=config.attempt_timeout_s,
            limits=httpx.Limits(max_connections=4 * config.clients),
        )

    async def run(self) -> None:
        await asyncio.gather(*(self._client(i) for i in range(self.config.clients)))

    async def close(self) -> None:
        await self._http.aclose()

    def _more(self) -> bool:
        return self.keep_going or self.started_writes < self.config.writes

    async def _client(self, number: int) -> None:
        rng = random.Random(f"{self.seed}:client:{number}")
        session = _Session(self, number % len(self.urls))
        unit = 0
        while self._more():
            await session.life_cycle(rng, f"{self.run_id}-c{number}-u{unit}")
            unit += 1


class _Session:
    """One client: the gateway it uses now (the next one after a failure) and its writes."""

    def __init__(self, workload: Workload, gateway: int) -> None:
        self.workload = workload
        self.gateway = gateway
        self.unit_writes: list[Write] = []  # the current life cycle's

    @property
    def url(self) -> str:
        return self.workload.urls[self.gateway]

    def _fail_over(self) -> None:
        self.gateway = (self.gateway + 1) % len(self.workload.urls)

    async def life_cycle(self, rng: random.Random, unit: str) -> None:
        self.unit_writes = []
        start = await self.write(
            unit, "start", unit, "POST", "/executed_obs_units/start",
            {"obs_unit_id": OBS_UNIT_ID, "conditions": {"chaos_start": unit}},
        )  # fmt: skip
        if start.record_id is None:
            return  # nothing can name a unit whose id the client never learnt
        await self.probe(start, f"/executed_obs_units/{start.record_id}", {"status": "running"})
        unit_id = start.record_id
        loose: list[str] = []
        for i in range(rng.randint(1, 3)):
            key = f"{unit}-f{i}"
            body = {
                **RAW_FILE,
                "name": key,
                "relative_path": f"chaos/{key}.fits",
                "size_bytes": rng.randint(1, 10_000),
                "executed_obs_unit_id": unit_id,
            }
            written = await self.write(unit, "file", key, "POST", "/raw_data_files", body)
            if written.record_id is not None:
                await self.probe(written, f"/raw_data_files/{written.record_id}", {})
                loose.append(written.record_id)
        key = f"{unit}-p"
        packed = [f for f in loose if rng.random() < 0.5]
        new = rng.randint(1, 3)
        body = {
            "name": key, "executed_obs_unit_id": unit_id, "instrument_module_id": MODULE_ID,
            "raw_data_file_ids": packed,
            "files": [{**RAW_FILE, "name": f"{key}/{i}", "relative_path": f"chaos/{key}/{i}.fits",
                       "size_bytes": rng.randint(1, 10_000)} for i in range(new)],
        }  # fmt: skip
        package = await self.write(unit, "package", key, "POST", "/raw_data_package", body, new)
        if package.record_id is not None:
            await self.probe(
                package, f"/raw_data_package/{package.record_id}", {}, files=new + len(packed)
            )
        key = f"{unit}-x"
        body = {"status": "success", "conditions": {"chaos_finish": key}}
        path = f"/executed_obs_units/{unit_id}/finish"
        finish = await self.write(unit, "finish", key, "PUT", path, body)
        if finish.outcome == "acknowledged":
            await self.probe(finish, f"/executed_obs_units/{unit_id}", {"status": "success"})
        await self.probe_unit(unit_id)
        await self.probe_file_pages(unit_id)

    async def write(
        self,
        unit: str,
        kind: Kind,
        key: str,
        method: str,
        path: str,
        body: dict[str, Any],
        files: int = 0,
    ) -> Write:
        workload = self.workload
        workload.started_writes += 1
        record = Write(unit=unit, kind=kind, key=key, files=files)
        deadline = time.monotonic() + workload.config.give_up_s
        while True:
            record.attempts += 1
            wait_s = min(0.1 * 2 ** min(record.attempts, 5), workload.config.max_retry_wait_s)
            try:
                answer = await workload._http.request(
                    method, self.url + path, json=body, headers={"Idempotency-Key": key}
                )
            except httpx.TransportError as exc:
                record.unanswered += 1
                record.detail = f"{type(exc).__name__} at {self.url}"
                self._fail_over()
            else:
                record.status = answer.status_code
                if answer.is_success:
                    found = answer.json()
                    record.outcome = "acknowledged"
                    record.record_id = str(found["id"])
                    record.tx_id = str(found["tx_id"])
                    break
                record.detail = answer.text[:300]
                if answer.status_code not in RETRYABLE:
                    record.outcome = "refused"
                    break
                wait_s = min(float(answer.headers.get("Retry-After", wait_s)), wait_s)
            if time.monotonic() + wait_s > deadline:
                break  # ambiguous: the last attempt may or may not have been taken
            await asyncio.sleep(wait_s)
        workload.history.writes.append(record)
        self.unit_writes.append(record)
        return record

    async def probe(
        self, write: Write, path: str, expected: dict[str, Any], files: int | None = None
    ) -> None:
        """The record the site just acknowledged, read at once through the same gateway."""
        result: ProbeResult
        detail = ""
        try:
            answer = await self.workload._http.get(self.url + path)
        except httpx.TransportError as exc:
            result, detail = "unavailable", type(exc).__name__
        else:
            result, detail = judge(answer, expected, files)
        self.workload.history.probes.append(Probe(write.key, write.kind, result, detail))

    async def probe_file_pages(self, unit_id: str) -> None:
        """The unit's files through the list endpoint, two to a page."""
        start_key = self.unit_writes[0].key
        pages: list[dict[str, Any]] = []
        while not pages or (len(pages) * PAGE_SIZE < min(pages[-1]["total"], MAX_FILES)):
            params: dict[str, str | int] = {
                "executed_obs_unit_id": unit_id,
                "limit": PAGE_SIZE,
                "offset": len(pages) * PAGE_SIZE,
            }
            try:
                answer = await self.workload._http.get(self.url + "/raw_data_files", params=params)
            except httpx.TransportError as exc:
                failed = Probe(start_key, "start", "unavailable", f"pages: {type(exc).__name__}")
                self.workload.history.probes.append(failed)
                return
            if answer.status_code != 200:
                result, detail = judge(answer, {})
                self.workload.history.probes.append(
                    Probe(start_key, "start", result, f"pages: {detail}")
                )
                return
            pages.append(answer.json())
        self.workload.history.probes += judge_pages(pages, self.unit_writes)

    async def probe_unit(self, unit_id: str) -> None:
        """The whole unit as one merged read (files from the replica and the buffer alike)."""
        try:
            answer = await self.workload._http.get(
                f"{self.url}/executed_obs_units/{unit_id}/details"
            )
        except httpx.TransportError as exc:
            probe = Probe(self.unit_writes[0].key, "start", "unavailable", type(exc).__name__)
            self.workload.history.probes.append(probe)
        else:
            self.workload.history.probes += judge_unit(answer, self.unit_writes, "details")


def judge(
    answer: httpx.Response, expected: dict[str, Any], files: int | None = None
) -> tuple[ProbeResult, str]:
    if answer.status_code >= 500:
        return "unavailable", f"{answer.status_code}"
    if answer.status_code != 200:
        return "violation", f"{answer.status_code} {answer.text[:200]}"
    found = answer.json()
    wrong = {k: found.get(k) for k, v in expected.items() if found.get(k) != v}
    if wrong:
        return "violation", f"expected {expected}, read {wrong}"
    if files is not None and len(found.get("files", [])) != files:
        return "violation", f"{len(found.get('files', []))} files, expected {files}"
    return "ok", ""


def judge_pages(pages: list[dict[str, Any]], writes: list[Write]) -> list[Probe]:
    """A unit's files read page by page: each acknowledged file on exactly one page, no file
    twice, and every page counting the same total (records moving from the buffer to the
    replica between two pages must not shift one out of sight or into view twice)."""
    ids = [item["id"] for page in pages for item in page["items"]]
    totals = {page["total"] for page in pages}
    probes = []
    for write in writes:
        if write.kind == "file" and write.outcome == "acknowledged":
            seen = ids.count(write.record_id)
            detail = "" if seen == 1 else f"pages: listed {seen} times"
            probes.append(Probe(write.key, "file", "ok" if seen == 1 else "violation", detail))
    if len(ids) != len(set(ids)) or len(totals) > 1 or totals != {len(ids)}:
        detail = f"pages: {len(ids)} items, {len(set(ids))} distinct, totals {sorted(totals)}"
        probes.append(Probe(writes[0].key, "start", "violation", detail))
    return probes


def judge_unit(answer: httpx.Response, writes: list[Write], when: str) -> list[Probe]:
    """A unit's details (``writes``: its life cycle so far, the start first): the unit, each
    acknowledged file and package exactly once, the status its finish set."""
    start = writes[0]
    finished = any(w.kind == "finish" and w.outcome == "acknowledged" for w in writes)
    result, detail = judge(answer, {"status": "success"} if finished else {})
    probes = [Probe(start.key, "start", result, f"{when}: {detail}" if detail else "")]
    if result != "ok":
        return probes
    body: dict[str, Any] = answer.json()
    files = [f["id"] for f in body["unpackaged_files"]]
    packages = {p["id"]: p for p in body["packages"]}
    for package in packages.values():
        files += [f["id"] for f in package["files"]]
    for write in writes[1:]:
        if write.outcome != "acknowledged" or write.kind == "finish":
            continue
        seen = files.count(write.record_id) if write.kind == "file" else 0
        seen += write.record_id in packages
        if seen != 1:
            probes.append(Probe(write.key, write.kind, "violation", f"{when}: read {seen} times"))
        else:
            probes.append(Probe(write.key, write.kind, "ok"))
    if len(files) != len(set(files)):
        probes.append(Probe(start.key, "start", "violation", f"{when}: a file listed twice"))
    return probes
