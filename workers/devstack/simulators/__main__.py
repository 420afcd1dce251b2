"""Serve one provider simulator in the foreground until Ctrl-C.

    python -m workers.devstack.simulators kakao --port 9101 --api-key KEY
    python -m workers.devstack.simulators sms --port 9102 --api-key KEY
    python -m workers.devstack.simulators venue --port 9103

Stop it to make its provider refuse connections; switch failures at run time with
e.g. `curl -X PUT localhost:9101/_sim/behaviour -d '{"mode": "error", "status": 503}'`.
"""

import argparse
import contextlib
import sys
from collections.abc import Sequence

import uvicorn

from workers.devstack.simulators.app import create_app
from workers.devstack.simulators.providers import PROVIDERS
from workers.devstack.simulators.server import uvicorn_config


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m workers.devstack.simulators",
        description="Serve a provider simulator (API.md §3) with /_sim/ controls.",
    )
    parser.add_argument("provider", choices=sorted(PROVIDERS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--api-key", help="the key Kakao and SMS accept (required for them)")
    args = parser.parse_args(argv)
    if PROVIDERS[args.provider].auth_scheme is not None and not args.api_key:
        parser.error(f"{args.provider} needs --api-key")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    app = create_app(args.provider, api_key=args.api_key)
    print(f"{args.provider} simulator on http://{args.host}:{args.port}", file=sys.stderr)
    # uvicorn shuts down gracefully, then re-raises the Ctrl-C it captured.
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.Server(uvicorn_config(app, args.host, args.port)).run()


if __name__ == "__main__":
    main()
