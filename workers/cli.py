"""`booking-worker PART`: run one background part of the system in this process."""

import importlib
import sys

PARTS = {
    "queue": ("workers.queue.__main__", "waiting-room admission, token and hold expiry"),
    "relay": ("workers.outbox_relay.__main__", "outbox relay: publish committed events to Kafka"),
    "saga": ("workers.saga.__main__", "ticket saga: venue registration or refund (consumer)"),
    "notifier": ("workers.notifier.__main__", "notifications: Kakao AlimTalk, then SMS (consumer)"),
    "token-expiry": ("workers.token_expiry.__main__", "remove paid queue tokens from Redis (sweeper)"),
    "sagas": ("workers.saga.status", "show ticket saga state per payment (admin view)"),
}


def usage() -> str:
    lines = ["usage: booking-worker PART", "", "parts:"]
    lines += [f"  {name:13} {summary}" for name, (_, summary) in PARTS.items()]
    lines += ["", "Settings come from the environment (API.md §4)."]
    return "\n".join(lines)


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in {"-h", "--help"}:
        print(usage())
        raise SystemExit(0 if args else 2)
    if args[0] not in PARTS:
        print(f"error: unknown part {args[0]!r}\n\n{usage()}", file=sys.stderr)
        raise SystemExit(2)
    module_name, _ = PARTS[args[0]]
    sys.argv = [f"booking-worker {args[0]}", *args[1:]]
    importlib.import_module(module_name).main()


if __name__ == "__main__":
    main()
