"""WebSocket event fan-out latency with 500 connected monitors: ``python -m bench.ws_fanout``.

What is measured: how long a transaction's state change takes to reach every WebSocket
monitor (``/api/ws/transactions``) of a secondary-site gateway served by several uvicorn
workers, and whether every monitor receives every event.

How the system delivers an event: the accept Lua script (and, later, the processor's and the
LSN tracker's scripts) PUBLISHes ``{"tx_id", "state", "seq", "at"}`` on the Redis channel
``ccat:{site}:events``. Each gateway worker holds ONE pub/sub subscription and puts the frame
in the queue of each of its local monitors; one task per monitor sends it.

The setup, as production runs it: the real local stack (main PostgreSQL, a streaming
replica, Redis with AOF ``appendfsync always``, the WAN simulator, 100 ms one way by default),
a secondary gateway started as ``ccat-api serve --workers 2`` and the site's processor
(``ccat-api process``) as its own process, so the buffer drains while monitors watch: every
write then yields three events (``buffered``, ``applied``, ``visible``), as it does at the
observatory, and the processor's and the replica's work competes for the cores.

The load: 500 real ``websockets`` clients (authenticated with ``Authorization: Bearer``),
spread over 4 client processes (multiprocessing, one uvloop event loop each, the cyclic
garbage collector off so the clients' own pauses are not measured), and
``POST /executed_obs_units/start`` at a steady 20 writes/s for 25 s from this process
(httpx, a few connections, so the kernel spreads the writes over the workers), after a 3 s
warm-up whose events are left out.

The clock: latency = the monitor's wall clock when its ``recv`` returns the frame minus the
event's ``at``. Both are ``time.time()`` on the same machine (``at`` is taken by the gateway
worker that accepted the write, just before it runs the accept script; by the processor or
the tracker for ``applied``/``visible``), so no clock offset enters. ``at`` is truncated to
whole milliseconds, so every figure is up to 1 ms high. The figure therefore spans everything
a monitor waits for: the accept script and its AOF fsync (Redis sends pub/sub messages only
after the fsync of the write that published them), the worker's subscription, its fan-out to
its monitors, the WebSocket send (uncompressed: the clients offer permessage-deflate, as
browsers do, and the gateway declines it, see ``ccat_api/cli.py``), the loopback and the
client's own parsing.

To say where the time goes, a probe process holds one plain pub/sub subscription of its own
(redis-py, as the gateway's hub uses) and records when Redis delivered each event: monitor
latency minus the probe's latency of the same event is the part spent after Redis, in the
gateway and the clients. Each client process also measures its own event-loop lag (a 10 ms
ticker), so a load generator that falls behind would show. The CPU each process spent in the
measured window is reported, overall and second by second (from a thread, with the p99 of
each second's events beside it); "untracked" is what the machine spent beyond the processes
we know of, so other work on a shared machine shows as such.

On a 2-core machine everything shares the cores, and the clients' CPU (about as much as the
gateway's) is CPU the gateway does not get: the figures are pessimistic for a gateway whose
monitors run elsewhere, and noisy (run it more than once). Diagnostic flags:
``--compression none`` (monitors do not even offer permessage-deflate), ``--no-processor`` (only
``buffered`` events, a third of the frames), ``--py-spy BIN`` (``py-spy record`` of each
worker during the window, raw collapsed stacks next to the JSON).

The headline figure is for the ``buffered`` events, the one every accepted write publishes
from the accept script; ``applied`` and ``visible`` events (published in bursts, one message
per replayed batch) are reported beside it, and the verdict holds the target (p99 <= 100 ms)
against both the ``buffered`` events and every event of every state.
Completeness: after the writes, the buffer is left to drain until every transaction is
visible, then each monitor must hold all three events of every measured write; missing and
duplicate deliveries, ``resync`` frames and monitors closed by the server are counted.

The report goes to stdout and ``bench/results/ws_fanout.json``, the stack's logs to
``bench/results/ws_fanout_logs/``. Exit status: 0 with every delivery made, whether or not
the target is met (a benchmark, not a test); 1 when deliveries were lost; 2 when the setup
or the writes failed; 130 when interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Iterable
from types import FrameType
from typing import Any

from bench.runner import Clock, keep_logs, run_async
from bench.sysinfo import fsync_probe, machine
from bench.tokens import issue_ws_tokens
from bench.ws_children import Run
from bench.ws_config import (
    EXIT_INTERRUPTED,
    EXIT_LOST,
    EXIT_OK,
    EXIT_SETUP,
    RESULTS_FILE,
    SITE,
    FanoutConfig,
)
from bench.ws_measure import measure
from bench.ws_report import render, rows_of
from bench.ws_stack import start_gateway
from ccat_api.devstack.stack import Stack, StackConfig

# This module is the command line; the benchmark's pieces import only modules later in this
# list, so none imports this one (or another cyclically): ws_measure, ws_report, ws_summary,
# ws_children, ws_monitors, ws_probe, ws_stack, ws_writes, ws_cpu, ws_config.


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def parse_args(argv: Iterable[str] | None) -> FanoutConfig:
    defaults = FanoutConfig()
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--monitors", type=int, default=defaults.monitors)
    parser.add_argument("--rate", type=float, default=defaults.rate_per_s, help="writes/s")
    parser.add_argument("--duration-s", type=float, default=defaults.duration_s)
    parser.add_argument("--warmup-s", type=float, default=defaults.warmup_s)
    parser.add_argument("--workers", type=int, default=defaults.workers, help="gateway workers")
    parser.add_argument("--client-processes", type=int, default=defaults.client_processes)
    parser.add_argument("--wan-delay-ms", type=int, default=defaults.wan_delay_ms, help="one way")
    parser.add_argument(
        "--no-processor",
        action="store_true",
        help="do not drain the buffer (only buffered events; completeness then checks those)",
    )
    parser.add_argument(
        "--compression",
        choices=("deflate", "none"),
        default="deflate",
        help="what the monitors offer (deflate: what browsers and websockets do by default)",
    )
    parser.add_argument(
        "--py-spy", metavar="BIN", help="a py-spy binary: record each worker in the window"
    )
    args = parser.parse_args(list(argv) if argv is not None else None)
    if args.monitors < 1 or args.rate <= 0 or args.duration_s <= 0 or args.workers < 1:
        parser.error("--monitors, --rate, --duration-s and --workers must be positive")
    if not 1 <= args.client_processes <= args.monitors:
        parser.error("--client-processes must be between 1 and --monitors")
    return FanoutConfig(
        monitors=args.monitors,
        rate_per_s=args.rate,
        duration_s=args.duration_s,
        warmup_s=args.warmup_s,
        workers=args.workers,
        client_processes=args.client_processes,
        wan_delay_ms=args.wan_delay_ms,
        processor=not args.no_processor,
        compression=None if args.compression == "none" else "deflate",
        py_spy=args.py_spy,
    )


def main(argv: Iterable[str] | None = None) -> int:
    config = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    clock = Clock()
    environment: dict[str, Any] = {"machine": machine()}
    stack = Stack(StackConfig(gateways=False, processor="none", wan_delay_ms=config.wan_delay_ms))
    run = Run()
    result: dict[str, Any] | None = None
    code = EXIT_SETUP
    try:
        stack.up(progress=lambda m: clock.say(f"starting {m}"))
        environment["redis_dir_fsync"] = fsync_probe(stack.redis.data_dir)
        tokens = issue_ws_tokens(stack)
        stack.wait_replica_caught_up()
        url, gateway = start_gateway(stack, config, clock)
        if config.processor:
            # Registered as the stack's processor, so stack.down() stops it too.
            stack.processor = stack.start_processor(SITE)
            clock.say("processor running (ccat-api process)")
        else:
            clock.say("processor NOT running (--no-processor): only buffered events flow")
        result = run_async(measure(stack, config, url, gateway, tokens, run, clock))
        lost = result["deliveries"]["missing_total"] + result["deliveries"]["duplicates"]
        failed_writes = result["writes"]["errors"]
        code = EXIT_LOST if lost or result["deliveries"]["monitors_closed"] else EXIT_OK
        if failed_writes:
            code = EXIT_SETUP
    except KeyboardInterrupt:
        clock.say("interrupted: stopping everything")
        code = EXIT_INTERRUPTED
    except Exception as exc:
        clock.say(f"SETUP FAILED: {type(exc).__name__}: {exc}")
        traceback.print_exc()
        code = EXIT_SETUP
    finally:
        # Ctrl-C twice must not leave processes behind: ignore it while cleaning up.
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            for spy in run.spies:
                if spy.poll() is None:
                    spy.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        spy.wait(10)
            for child in run.children:
                child.stop()
            keep_logs(stack, RESULTS_FILE.parent / "ws_fanout_logs")
            stack.down()
        finally:
            signal.signal(signal.SIGINT, previous)
    environment["machine_after"] = machine()
    if result is None:
        return code
    if not config.processor:
        result["note"] = "processor not running: applied/visible events were not produced"
    report = {
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "duration_s": round(time.monotonic() - clock.started, 1),
        "environment": environment,
        "figures": {row.key: row.as_dict() for row in rows_of(result)},
        "result": result,
        "exit_code": code,
    }
    RESULTS_FILE.parent.mkdir(parents=True, exist_ok=True)
    RESULTS_FILE.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print()
    print(render(result, environment))
    if result["writes"]["errors"]:
        print(
            f"WRITES FAILED: {result['writes']['errors']} of {result['writes']['sent']},"
            f" e.g. {result['writes']['error_samples'][:2]}"
        )
    print(f"figures written to {RESULTS_FILE}")
    return code


if __name__ == "__main__":
    sys.exit(main())
