"""`booking-token USER [--admin] [--name N] [--phone P]`: mint a JWT to try the API by hand.

In production an API gateway issues these. Locally the token is made by the API's own
token policy: AUTH_JWT_SECRET, AUTH_JWT_AUDIENCE / AUTH_JWT_ISSUER (`aud`, `iss`) and
AUTH_JWT_MAX_LIFETIME_SECONDS, from the environment or else from the running `make run`
of this project; with neither, the secret `make run` keeps in .data/jwt-secret.
"""

import argparse
import sys
import time
from pathlib import Path

import jwt

from services.booking.config import TokenPolicy
from services.common.settings import load_settings_or_exit
from services.common.stack_env import DATA_DIR, JWT_SECRET_FILE, find_project_root

DEFAULT_HOURS = 12.0


def kept_secret() -> dict[str, str]:
    """The secret `make run` keeps across runs, for when no stack runs and none is set."""
    path = find_project_root(Path.cwd()) / DATA_DIR / JWT_SECRET_FILE
    try:
        return {"AUTH_JWT_SECRET": path.read_text().strip()}
    except OSError:
        return {}


def lifetime_seconds(hours: float | None, policy: TokenPolicy) -> int:
    """The asked lifetime, or the default within the policy; exit when the API would refuse it."""
    limit = policy.auth_jwt_max_lifetime_seconds
    if hours is None:
        return min(int(DEFAULT_HOURS * 3600), limit)
    if hours <= 0 or hours * 3600 > limit:
        print(f"error: --hours must be above 0 and at most {limit / 3600:g}"
              " (AUTH_JWT_MAX_LIFETIME_SECONDS): the API refuses longer-lived tokens", file=sys.stderr)
        raise SystemExit(2)
    return int(hours * 3600)


def main() -> None:
    parser = argparse.ArgumentParser(prog="booking-token", description=__doc__.splitlines()[0])
    parser.add_argument("user", help="the user id (sub): 1-64 of [A-Za-z0-9_-]")
    parser.add_argument("--admin", action="store_true", help="add role=admin")
    parser.add_argument("--name", help="OIDC name claim")
    parser.add_argument("--phone", help="OIDC phone_number claim")
    parser.add_argument("--hours", type=float, default=None,
                        help=f"lifetime (default {DEFAULT_HOURS:g}, or"
                        " AUTH_JWT_MAX_LIFETIME_SECONDS if that is shorter)")
    args = parser.parse_args()
    policy = load_settings_or_exit(TokenPolicy, defaults=kept_secret())
    claims: dict[str, object] = {
        "sub": args.user, "exp": int(time.time()) + lifetime_seconds(args.hours, policy),
    }
    if args.admin:
        claims["role"] = "admin"
    if args.name:
        claims["name"] = args.name
    if args.phone:
        claims["phone_number"] = args.phone
    # An API with AUTH_JWT_AUDIENCE / AUTH_JWT_ISSUER set refuses tokens without them.
    if policy.auth_jwt_audience:
        claims["aud"] = policy.auth_jwt_audience
    if policy.auth_jwt_issuer:
        claims["iss"] = policy.auth_jwt_issuer
    print(jwt.encode(claims, policy.auth_jwt_secret, algorithm="HS256"))


if __name__ == "__main__":
    main()
