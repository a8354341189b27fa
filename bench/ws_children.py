"""The processes ``bench.ws_fanout`` spawns beside the stack, seen from the parent: the
monitor clients and the probe (``Child``, talked to over a pipe) and the py-spy recorders,
all kept in ``Run`` so the caller can stop them whatever happened."""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import subprocess
import threading
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from bench.ws_config import RESULTS_FILE, FanoutConfig, SetupError


@dataclass
class Child:
    name: str
    process: BaseProcess
    conn: Connection

    async def receive(self, timeout_s: float) -> dict[str, Any]:
        # Polls from a thread; ``given_up`` ends it at once when we are cancelled (Ctrl-C),
        # so the loop's shutdown does not wait for the timeout.
        given_up = threading.Event()

        def wait() -> dict[str, Any]:
            deadline = time.monotonic() + timeout_s
            while time.monotonic() < deadline and not given_up.is_set():
                if self.conn.poll(0.2):
                    message: dict[str, Any] = self.conn.recv()
                    return message
                if not self.process.is_alive():
                    raise SetupError(f"{self.name} exited ({self.process.exitcode})")
            raise SetupError(f"{self.name} did not answer within {timeout_s:.0f}s")

        try:
            message = await asyncio.to_thread(wait)
        except asyncio.CancelledError:
            given_up.set()
            raise
        except EOFError as exc:
            raise SetupError(f"{self.name} closed its pipe ({self.process.exitcode})") from exc
        if message.get("type") == "error":
            raise SetupError(f"{self.name} failed: {message['error']}")
        return message

    def stop(self) -> None:
        if self.process.is_alive():
            self.process.terminate()
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(5)
        self.conn.close()


def split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


@dataclass
class Run:
    """Everything one run started, so the caller can stop it whatever happened."""

    children: list[Child] = field(default_factory=list)
    spies: list[subprocess.Popen[bytes]] = field(default_factory=list)


def spawn(
    run: Run,
    name: str,
    target: Any,
    args: tuple[Any, ...],
    ctx: multiprocessing.context.SpawnContext,
) -> Child:
    parent_end, child_end = ctx.Pipe()
    process = ctx.Process(target=target, args=(*args, child_end), name=name, daemon=True)
    process.start()
    child_end.close()
    child = Child(name, process, parent_end)
    run.children.append(child)
    return child


def start_spies(config: FanoutConfig, workers: list[int], run: Run) -> list[str]:
    """py-spy record of each worker for the measured window (raw collapsed stacks)."""
    if not config.py_spy:
        return []
    files = []
    for pid in workers:
        out = RESULTS_FILE.parent / f"ws_fanout_pyspy_{pid}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        run.spies.append(
            subprocess.Popen(
                [
                    config.py_spy, "record", "--pid", str(pid), "--rate", "100",
                    "--duration", str(math.ceil(config.duration_s)), "--format", "raw",
                    "--nonblocking", "--output", str(out),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )  # fmt: skip
        files.append(str(out))
    return files
