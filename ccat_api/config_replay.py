"""How a secondary site replays its buffer on main and watches it become visible: the
processor's batches, lease, backoff and timeouts, main's standbys, the schema hold, and the
LSN tracker's poll. A group of settings that ``config.Settings`` inherits (its one source of
defaults, like every other setting)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReplaySettings(BaseModel):
    run_processor: bool = Field(
        default=False,
        description="Run the processor and LSN tracker inside the gateway (one active per site"
        " via a lease) instead of as `ccat-api process`.",
    )

    processor_batch_size: int = Field(
        default=5000,
        ge=1,
        le=20000,
        description="Transactions per replay batch (one DB transaction, one WAN round trip).",
    )
    processor_poll_interval_s: float = Field(
        default=0.05, gt=0, description="Pause between looks at an empty buffer."
    )
    processor_lease_ttl_s: float = Field(
        default=10.0,
        gt=0,
        description="Processor lease lifetime; a dead processor's lease expires after this and"
        " another takes over.",
    )
    processor_backoff_initial_s: float = Field(
        default=0.2,
        gt=0,
        description="First pause of the capped exponential backoff after a transient failure"
        " (transient failures are never dead-lettered).",
    )
    processor_backoff_max_s: float = Field(default=30.0, gt=0, description="Cap of that backoff.")
    main_standby_names: list[str] = Field(
        default_factory=list,
        description=(
            "Main's standbys (their application_name, e.g. Patroni member names) whose flush"
            " position makes a replayed batch durable: the site keeps each applied"
            " transaction's envelope until every one of them has it, and replays those main"
            " lost in a failover. Empty: main has no standby, or commits synchronously to it"
            " (Patroni synchronous_mode), and a commit is durable at once."
        ),
    )
    schema_hold_retry_s: float = Field(
        default=10.0,
        gt=0,
        description=(
            "While the replay is held on a schema disagreement with main (an envelope version"
            " main does not apply, or schema drift), how often it tries again."
        ),
    )
    backlog_report_interval_s: float = Field(
        default=30.0,
        gt=0,
        description=(
            "How often the processor tells main what the site holds (oldest pending envelope"
            " version, count), which migrations' contract steps read."
        ),
    )
    processor_main_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Timeout for one round trip to main (connect, batch, LSN read).",
    )

    tracker_poll_interval_s: float = Field(
        default=0.01,
        gt=0,
        description="Replica replay-LSN poll while anything waits to become visible.",
    )
    tracker_replica_timeout_s: float = Field(
        default=2.0, gt=0, description="Timeout for one replay-LSN read on the replica."
    )
