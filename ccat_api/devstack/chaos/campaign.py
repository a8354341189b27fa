"""One campaign on a stack of its own: main PostgreSQL (with a standby when the stack offers
one), the site's streaming replica behind the WAN simulator, a Redis primary with a replica
and three Sentinels, a fleet of gateways and the processor as processes. Clients write while
the seeded schedule injects faults; then everything is healed, the site drains, and the
checker judges the history against main and the site."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from pathlib import Path

from ccat_api.devstack.chaos.checker import Report, check
from ccat_api.devstack.chaos.faults import (
    MAIN_FAILOVER,
    SITE_FAULTS,
    FaultInjector,
    main_failover_of,
    plan,
)
from ccat_api.devstack.chaos.fleet import GatewayFleet
from ccat_api.devstack.chaos.history import History
from ccat_api.devstack.chaos.observe import diagnose, read_back, read_main, read_site, wait_drained
from ccat_api.devstack.chaos.sabotage import damage_main
from ccat_api.devstack.chaos.summary import fault_log, render, replay_command
from ccat_api.devstack.chaos.workload import Workload, WorkloadConfig
from ccat_api.devstack.redis_users import ADMIN
from ccat_api.devstack.stack import Stack, StackConfig


@dataclass(frozen=True)
class CampaignConfig:
    seed: int
    writes: int = 400  # at least this many writes; writing goes on until the faults are done
    faults: int = 6
    clients: int = 6
    gateways: int = 2
    mean_gap_s: float = 8.0  # between fault starts
    wan_delay_ms: int = 25  # one way, outside wan_delay faults
    drain_timeout_s: float = 600.0
    # Only these fault kinds (None: every kind the stack offers), to replay one kind's faults.
    kinds: tuple[str, ...] | None = None
    # After the clean check: damage main and check again (the report must then fail).
    sabotage: bool = False
    base_dir: Path | None = None
    keep_files: bool = False


@dataclass
class CampaignResult:
    config: CampaignConfig
    report: Report
    history: History
    duration_s: float
    sabotaged: Report | None = None
    sabotage_notes: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)

    def replay_command(self) -> str:
        c = self.config
        return replay_command(c.seed, c.writes, c.faults, c.clients, c.mean_gap_s)

    def summary(self) -> str:
        config = self.config
        text = [
            render(self.report, self.history, config.seed, self.duration_s),
            "faults:",
            fault_log(self.history),
        ]
        if not self.report.ok:
            text.append(f"replay: {self.replay_command()}")
            text += ["diagnosis:", *(f"  {line}" for line in self.diagnosis)]
        if self.sabotaged is not None:
            text.append("sabotage: " + "; ".join(self.sabotage_notes))
            text.append(
                f"  then: lost {self.sabotaged.lost}, duplicated {self.sabotaged.duplicated},"
                f" order {self.sabotaged.order}"
            )
        return "\n".join(text)


def stack_config(config: CampaignConfig) -> StackConfig:
    return StackConfig(
        base_dir=config.base_dir,
        wan_delay_ms=config.wan_delay_ms,
        gateways=False,
        processor="none",
        redis_replicas=1,
        main_standby=True,
        keep_files=config.keep_files,
    )


def run_campaign(config: CampaignConfig, progress: object = print) -> CampaignResult:
    say = progress if callable(progress) else (lambda message: None)
    began = time.monotonic()
    stack = Stack(stack_config(config))
    fleet: GatewayFleet | None = None
    try:
        stack.up(progress=say)
        stack.start_processor()
        token = asyncio.run(_issue_token(stack))
        stack.wait_replica_caught_up()
        fleet = GatewayFleet(stack, config.gateways, settings={"write_rate_limit": ""})
        fleet.start_all()
        if config.keep_files:
            say(f"the stack's files are kept in {stack.base_dir}")
        say(f"campaign: seed {config.seed}, {config.writes} writes, {config.faults} faults")
        history, report, extra = asyncio.run(_campaign(stack, fleet, token, config, say))
        diagnosis = [] if report.ok else diagnose(stack)
    finally:
        if fleet is not None:
            fleet.stop_all()
        stack.down()
    result = CampaignResult(config, report, history, time.monotonic() - began)
    result.diagnosis = diagnosis
    if extra is not None:
        result.sabotaged, result.sabotage_notes = extra
    return result


async def _issue_token(stack: Stack) -> str:
    from ccat_api.devstack.tokens import issue_tokens

    issued = await issue_tokens(stack, {"chaos-campaign": "service"}, application_name="chaos")
    return issued["chaos-campaign"]


async def _campaign(
    stack: Stack, fleet: GatewayFleet, token: str, config: CampaignConfig, say: object
) -> tuple[History, Report, tuple[Report, list[str]] | None]:
    tell = say if callable(say) else (lambda message: None)
    offered = SITE_FAULTS + ((MAIN_FAILOVER,) if main_failover_of(stack) else ())
    kinds = tuple(k for k in offered if config.kinds is None or k in config.kinds)
    schedule = plan(config.seed, config.faults, kinds, config.mean_gap_s)
    run_id = f"chaos{config.seed}"
    workload = Workload(
        WorkloadConfig(clients=config.clients, writes=config.writes),
        fleet.urls,
        token,
        run_id,
        config.seed,
    )
    injector = FaultInjector(stack, fleet, config.wan_delay_ms)
    writing = asyncio.create_task(workload.run())
    try:
        faults = await injector.run(schedule, time.monotonic())
    finally:
        workload.keep_going = False
    await writing
    await workload.close()
    history = workload.history
    history.faults = faults
    if MAIN_FAILOVER not in offered:
        history.skipped_faults.append(MAIN_FAILOVER)
    tell(f"workload done: {len(history.writes)} writes; healing and draining")
    await injector.heal()
    injector.close()
    site = stack.config.secondary_site
    redis_url = _redis_url(stack)
    await wait_drained(redis_url, site, config.drain_timeout_s)
    main_dsn = stack.main_db.dsn()
    main = await read_main(main_dsn, site, run_id)
    site_state = await read_site(redis_url, site, history)
    site_state.final_reads = await read_back(fleet.urls, token, history)
    report = check(history, main, site_state)
    if not config.sabotage:
        return history, report, None
    notes = await damage_main(main_dsn, history)
    return (
        history,
        report,
        (check(history, await read_main(main_dsn, site, run_id), site_state), notes),
    )


def _redis_url(stack: Stack) -> str:
    if stack.redis_set is None:
        return stack.redis.url
    assert stack.redis_set.users is not None
    return stack.redis_set.users.url(ADMIN, stack.redis_set.primary_port())
