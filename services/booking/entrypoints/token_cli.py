"""`booking-token USER [--admin] [--name N] [--phone P]`: mint a JWT to try the API by hand.

In production an API gateway issues these; locally `make run` keeps its secret in
.data/jwt-secret, which this command reads when AUTH_JWT_SECRET is unset. The token
names AUTH_JWT_AUDIENCE and AUTH_JWT_ISSUER (`aud`, `iss`) when those are set.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import jwt

LOCAL_SECRET = Path(".data/jwt-secret")


def secret() -> str:
    if value := os.environ.get("AUTH_JWT_SECRET"):
        return value
    if LOCAL_SECRET.exists():
        return LOCAL_SECRET.read_text().strip()
    print("error: set AUTH_JWT_SECRET or start `make run` once (it writes .data/jwt-secret)",
          file=sys.stderr)
    raise SystemExit(2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="booking-token", description=__doc__.splitlines()[0])
    parser.add_argument("user", help="the user id (sub): 1-64 of [A-Za-z0-9_-]")
    parser.add_argument("--admin", action="store_true", help="add role=admin")
    parser.add_argument("--name", help="OIDC name claim")
    parser.add_argument("--phone", help="OIDC phone_number claim")
    parser.add_argument("--hours", type=float, default=12, help="lifetime (default 12)")
    args = parser.parse_args()
    claims: dict[str, object] = {"sub": args.user, "exp": int(time.time() + args.hours * 3600)}
    if args.admin:
        claims["role"] = "admin"
    if args.name:
        claims["name"] = args.name
    if args.phone:
        claims["phone_number"] = args.phone
    # An API with AUTH_JWT_AUDIENCE / AUTH_JWT_ISSUER set refuses tokens without them.
    for claim, variable in (("aud", "AUTH_JWT_AUDIENCE"), ("iss", "AUTH_JWT_ISSUER")):
        if value := os.environ.get(variable, "").strip():
            claims[claim] = value
    print(jwt.encode(claims, secret(), algorithm="HS256"))


if __name__ == "__main__":
    main()
