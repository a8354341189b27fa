"""Example answers shown in the OpenAPI document, one per answer shape, all in one place.

Routes attach them with ``responses.documented``; tests/unit/api/test_openapi.py validates
every example against its route's response model, so an example cannot drift from the shape
it illustrates. The records are those of the seeded observatory (FYST, Prime-Cam, CHAI).
"""

from __future__ import annotations

from typing import Any

from ccat_api.schemas.raw_data import FILE_EXAMPLE

Example = dict[str, Any]

UNIT_ID = "019a4c2e-7f00-7000-8000-000000000001"
FILE_ID = "019a4c2e-7f00-7000-8000-000000000002"
PACKAGE_ID = "019a4c2e-7f00-7000-8000-000000000003"
TRANSFER_ID = "019a4c2e-7f00-7000-8000-000000000004"
LOG_ID = "019a4c2e-7f00-7000-8000-000000000005"
COPY_ID = "019a4c2e-7f00-7000-8000-000000000006"
STAGING_JOB_ID = "019a4c2e-7f00-7000-8000-000000000007"
ARCHIVE_ID = "019a4c2e-7f00-7000-8000-000000000008"
TX_ID = "019a4c2e-7f00-7000-8000-00000000000a"
STARTED = "2026-11-22T03:30:00Z"
FINISHED = "2026-11-22T04:30:00Z"


def page(item: Example, total: int = 1) -> Example:
    """A list answer holding one example item (every list shares this envelope)."""
    return {"items": [item], "total": total, "limit": 100, "offset": 0}


# --- critical records ------------------------------------------------------------------------

WRITE_ACCEPTED: Example = {
    "id": UNIT_ID,
    "tx_id": TX_ID,
    "status": "buffered",
    "ids": [UNIT_ID],
}
EXECUTED_OBS_UNIT: Example = {
    "id": UNIT_ID,
    "obs_unit_id": 1,
    "site_id": 1,
    "instrument_module_id": 1,
    "status": "success",
    "start_time": STARTED,
    "end_time": FINISHED,
    "mean_pwv_mm": 0.7,
    "mean_elevation_deg": 52.5,
    "conditions": {"wind_m_s": 4.2},
    "created_by": "prime-cam-daq",
    "created_at": STARTED,
    "updated_at": FINISHED,
}
# The file the request examples send, as the answer shows it once packed.
RAW_DATA_FILE: Example = {
    "id": FILE_ID,
    **FILE_EXAMPLE,
    "executed_obs_unit_id": UNIT_ID,
    "raw_data_package_id": PACKAGE_ID,
    "created_at": STARTED,
}
RAW_DATA_PACKAGE: Example = {
    "id": PACKAGE_ID,
    "name": "pkg-2026-11-22-0001",
    "executed_obs_unit_id": UNIT_ID,
    "instrument_module_id": 1,
    "status": "complete",
    "file_count": 1,
    "total_size_bytes": 52428800,
    "checksum": "md5:0123456789abcdef",
    "created_at": FINISHED,
    "updated_at": FINISHED,
}
RAW_DATA_PACKAGE_WITH_FILES: Example = {**RAW_DATA_PACKAGE, "files": [RAW_DATA_FILE]}
TRANSFER: Example = {
    "id": TRANSFER_ID,
    "raw_data_package_id": PACKAGE_ID,
    "route_id": 1,
    "status": "transferring",
    "bytes_total": 52428800,
    "bytes_transferred": 1048576,
    "attempts": 1,
    "error": None,
    "started_at": "2026-11-22T04:31:00Z",
    "finished_at": None,
    "created_at": "2026-11-22T04:30:30Z",
    "updated_at": "2026-11-22T04:31:10Z",
}
TRANSFER_LOG: Example = {
    "id": LOG_ID,
    "data_transfer_id": TRANSFER_ID,
    "level": "info",
    "message": "bbcp started with 8 streams",
    "logged_at": "2026-11-22T04:31:00Z",
}
PHYSICAL_COPY: Example = {
    "id": COPY_ID,
    "raw_data_package_id": PACKAGE_ID,
    "data_location_id": 2,
    "path": "/data/buffer/pkg-2026-11-22-0001",
    "status": "verified",
    "checksum": "md5:0123456789abcdef",
    "created_at": FINISHED,
    "updated_at": "2026-11-22T04:35:00Z",
}
EXECUTED_OBS_UNIT_DETAILS: Example = {
    **EXECUTED_OBS_UNIT,
    "packages": [{**RAW_DATA_PACKAGE, "files": [RAW_DATA_FILE], "transfers": [TRANSFER]}],
    "unpackaged_files": [],
}
OVERVIEW: Example = {
    "transfers_by_status": {"pending": 2, "transferring": 1, "completed": 40, "failed": 0},
    "packages_by_status": {
        "building": 1,
        "complete": 2,
        "transferring": 1,
        "archived": 40,
        "failed": 0,
    },
    "routes": [{"route_id": 1, "by_status": {"pending": 2, "transferring": 1, "completed": 40}}],
    "bytes_in_flight": 51380224,
    "failed_transfers": 0,
}

# --- transactions and the site ---------------------------------------------------------------

TRANSACTION: Example = {
    "tx_id": TX_ID,
    "state": "visible",
    "seq": 42,
    "created_at": 1795404600.12,
    "applied_at": 1795404600.48,
    "visible_at": 1795404600.71,
    "failed_at": None,
    "lsn": 50331880,
    "attempts": 1,
    "last_error": None,
    "error_code": None,
    "error": None,
    "depends_on": [],
    "records": [f"executed_obs_units:{UNIT_ID}"],
    "conflict": None,
}
RETRY_RESULT: Example = {"retried": [TX_ID]}
PROCESSOR: Example = {
    "state": "idle",
    "consumer": "observatory-gw-1:4242",
    "epoch": "3",
    "updated_at": "1795404600000",
}
MAIN_REACHABLE: Example = {"ok": True, "checked_at": 1795404599.5, "latency_ms": 201.4}
BUFFER_STATS: Example = {
    "depth": 16,
    "oldest_pending_age_s": 2.3,
    "awaiting_replica": 3,
    "dead_letters": 0,
    "processor": PROCESSOR,
}
SITE_INFO: Example = {
    "site_name": "observatory",
    "site_type": "secondary",
    "critical_writes": "buffered",
    "reads": "local replica merged with buffer",
    "schema_revision": "0008",
    "database_revision": "0008",
    "envelope_version": 1,
    "schema_check": "database and code at revision 0008",
    "processor_in_gateway": True,
}
SITE_STATUS: Example = {
    "site": "observatory",
    "site_type": "secondary",
    "sampled_at": 1795404600.0,
    "main": MAIN_REACHABLE,
    "replica": {
        "ok": True,
        "error": None,
        "receive_lsn": 50331880,
        "replay_lsn": 50331880,
        "receive_lag_bytes": 0,
        "apply_lag_bytes": 0,
        "apply_lag_s": 0.0,
        "wan_delay_s": 0.1,
        "since_wal_message_s": 0.4,
    },
    "buffer": {
        "depth": 16,
        "oldest_pending_age_s": 2.3,
        "awaiting_replica": 3,
        "dead_letters": 0,
        "accept_rate_tx_s": 5.0,
        "drain_rate_tx_s": 120.0,
        "estimated_drain_s": 0.1,
        "memory_used_bytes": 1_610_612_736,
        "memory_max_bytes": 8_589_934_592,
        "memory_used_fraction": 0.1875,
        "near_capacity": False,
    },
    "processor": PROCESSOR,
    "counters": {"accepted": 19, "applied": 3, "visible": 3, "failed": 0},
    "redis": {"ok": True, "error": None},
    "degraded": [],
}
HEALTH: Example = {
    "site": "observatory",
    "site_type": "secondary",
    "replica": {"ok": True, "in_recovery": True, "apply_lag_bytes": 0},
    "main": MAIN_REACHABLE,
    "redis": {"ok": True},
    "buffer": {"depth": 0, "oldest_pending_age_s": None, "awaiting_replica": 0, "dead_letters": 0},
    "processor": PROCESSOR,
    "status": "ok",
}
HEALTH_DEGRADED: Example = {
    "site": "observatory",
    "site_type": "secondary",
    "replica": {"ok": True, "in_recovery": True, "apply_lag_bytes": 0},
    "main": {"ok": False, "checked_at": 1795404599.5, "error": "timeout"},
    "redis": {"ok": False, "error": "Connection refused"},
    "status": "degraded",
}
TICKET: Example = {"ticket": "tk_3q2Vb8kLmN0pQrStUvWx", "expires_in": 30}
METRICS = (
    "# HELP ccat_buffer_depth Transactions buffered at this site and not yet applied on main\n"
    "# TYPE ccat_buffer_depth gauge\n"
    "ccat_buffer_depth 16.0\n"
)

# --- access ----------------------------------------------------------------------------------

SESSION: Example = {
    "access_token": "eyJhbGciOi...",
    "token_type": "bearer",
    "expires_in": 900,
    "refresh_token": "ccatr_...",
}
ME: Example = {
    "user_id": 7,
    "login": "anna",
    "role": "operator",
    "permissions": ["manage:account", "read:buffer", "read:observations", "write:observations"],
    "authenticated_with": "session",
    "token_scopes": None,
}
TOKEN: Example = {
    "id": 12,
    "user_id": 7,
    "name": "laptop",
    "prefix": "a1b2c3d4",
    "scopes": ["read:observations"],
    "created_at": "2026-11-01T09:00:00Z",
    "expires_at": "2027-01-30T09:00:00Z",
    "revoked_at": None,
    "last_used_at": "2026-11-22T03:29:58Z",
}
TOKEN_ISSUED: Example = {
    "id": 12,
    "user_id": 7,
    "name": "laptop",
    "prefix": "a1b2c3d4",
    "scopes": ["read:observations"],
    "expires_at": "2027-01-30T09:00:00Z",
    "token": "ccat_a1b2c3d4_9Xk2...",
}
USER: Example = {
    "id": 7,
    "login": "prime-cam-daq",
    "name": "Prime-Cam data acquisition",
    "email": None,
    "role": "service",
    "active": True,
    "github_id": None,
    "created_at": "2026-10-01T12:00:00Z",
    "last_login_at": None,
}
PREFERENCES: Example = {"theme": "dark", "overview_refresh_s": 5}

# --- driven from main ------------------------------------------------------------------------

ARCHIVE_TRANSFER: Example = {
    "id": ARCHIVE_ID,
    "raw_data_package_id": PACKAGE_ID,
    "data_location_id": 3,
    "status": "completed",
    "error": None,
    "requested_at": "2026-11-23T10:00:00Z",
    "completed_at": "2026-11-23T10:20:00Z",
}
STAGING_JOB: Example = {
    "id": STAGING_JOB_ID,
    "destination_location_id": 5,
    "status": "pending",
    "requested_by": "anna",
    "error": None,
    "created_at": "2026-12-01T08:00:00Z",
    "updated_at": "2026-12-01T08:00:00Z",
}
STAGING_JOB_WITH_PACKAGES: Example = {**STAGING_JOB, "raw_data_package_ids": [PACKAGE_ID]}
