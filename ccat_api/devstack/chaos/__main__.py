"""``python -m ccat_api.devstack.chaos``: one campaign, its table, exit 1 on any violation."""

from __future__ import annotations

import argparse
import os
import random
import sys

from ccat_api.devstack.chaos.campaign import CampaignConfig, run_campaign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ccat_api.devstack.chaos")
    parser.add_argument(
        "--seed",
        type=int,
        default=int(os.environ.get("CCAT_CHAOS_SEED") or random.SystemRandom().randrange(10**9)),
        help="the seed (default: CCAT_CHAOS_SEED, else a fresh one, printed)",
    )
    parser.add_argument("--writes", type=int, default=10_000, help="at least this many writes")
    parser.add_argument("--faults", type=int, default=24)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--gateways", type=int, default=2)
    parser.add_argument("--mean-gap-s", type=float, default=10.0, help="between fault starts")
    parser.add_argument(
        "--kinds", help="only these fault kinds, comma-separated (e.g. main_failover)"
    )
    parser.add_argument("--drain-timeout-s", type=float, default=600.0)
    parser.add_argument("--sabotage", action="store_true", help="then damage main, check again")
    parser.add_argument("--keep-files", action="store_true", help="keep the stack's directory")
    args = parser.parse_args(argv)
    print(f"chaos seed {args.seed}", flush=True)
    config = CampaignConfig(
        seed=args.seed,
        writes=args.writes,
        faults=args.faults,
        clients=args.clients,
        gateways=args.gateways,
        mean_gap_s=args.mean_gap_s,
        sabotage=args.sabotage,
        keep_files=args.keep_files,
        kinds=tuple(args.kinds.split(",")) if args.kinds else None,
        drain_timeout_s=args.drain_timeout_s,
    )
    result = run_campaign(config, progress=lambda message: print(f"  {message}", flush=True))
    print(result.summary(), flush=True)
    return 0 if result.report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
