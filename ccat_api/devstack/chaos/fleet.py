"""The site's gateways as a fleet: several ``ccat-api serve`` processes of one secondary site
sharing its Redis, each on a port of its own that it keeps across a kill and a restart, so
clients fail over between addresses that stay valid."""

from __future__ import annotations

import sys
from typing import Any

from ccat_api.devstack.stack import ManagedProcess, Stack
from ccat_api.devstack.system import free_port, wait_port

START_TIMEOUT_S = 30.0


class GatewayFleet:
    def __init__(self, stack: Stack, count: int, settings: dict[str, Any] | None = None) -> None:
        self.stack = stack
        self.ports = [free_port() for _ in range(count)]
        overrides = {**stack.settings_overrides(), **(settings or {}), "run_processor": False}
        self.processes = [
            ManagedProcess(
                f"gateway-{i}",
                [sys.executable, "-m", "ccat_api", "serve", "--host", "127.0.0.1", "--port",
                 str(port)],
                stack.env_for(overrides),
                stack.base_dir / f"chaos-gateway-{i}.log",
            )
            for i, port in enumerate(self.ports)
        ]  # fmt: skip

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.ports]

    def start(self, index: int) -> None:
        process = self.processes[index]
        process.start()
        if not wait_port(self.ports[index], START_TIMEOUT_S):
            raise RuntimeError(f"{process.name} did not start; see {process.log_file}")

    def start_all(self) -> None:
        for index in range(len(self.processes)):
            self.start(index)

    def kill(self, index: int) -> None:
        """SIGKILL: requests in flight get no answer."""
        self.processes[index].kill()

    def heal(self) -> None:
        for index, process in enumerate(self.processes):
            if not process.running():
                process.kill()  # reaps one that died by itself
                self.start(index)

    def stop_all(self) -> None:
        for process in self.processes:
            process.stop()
