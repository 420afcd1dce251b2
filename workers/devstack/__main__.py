"""`booking-stack` / `make run`: the whole system in one foreground process tree."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from services.common.stack_env import find_project_root
from workers.devstack.launcher import run_stack


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="booking-stack",
        description=(
            "Run the booking system in the foreground: embedded PostgreSQL, Redis and "
            "Kafka-protocol broker for whichever of DATABASE_URL, REDIS_URL and "
            "KAFKA_BOOTSTRAP_SERVERS is unset, migrations, then the API and workers. "
            "State lives in .data/ under the project root; Ctrl-C stops everything."
        ),
    )
    parser.add_argument(
        "--project-root",
        type=Path,
        default=None,
        help="directory whose .data/ holds the stack's state (default: nearest pyproject.toml)",
    )
    args = parser.parse_args()
    root = args.project_root or find_project_root(Path.cwd())
    raise SystemExit(run_stack(root.resolve(), dict(os.environ)))


if __name__ == "__main__":
    main()
