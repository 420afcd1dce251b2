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
            "State and each part's log live in .data/ under the project root; commands run "
            "in the project read the stack's settings from .data/stack.env while it runs. "
            "Ctrl-C stops everything."
        ),
    )
    parser.add_argument(
        "--project-root",
        type=Path,
        default=None,
        help="directory whose .data/ holds the stack's state (default: nearest pyproject.toml)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="show every part's output here, not only its warnings and errors"
        " (also with LOG_LEVEL=debug); it is always in .data/logs/PART.log",
    )
    args = parser.parse_args()
    root = args.project_root or find_project_root(Path.cwd())
    verbose = args.verbose or os.environ.get("LOG_LEVEL", "").lower() == "debug"
    raise SystemExit(run_stack(root.resolve(), dict(os.environ), verbose=verbose))


if __name__ == "__main__":
    main()
