"""Verifying the gateway's HS256 JWTs against the token policy, each distinct token once."""

import re
import time
import unicodedata
from typing import Any

import jwt

from services.booking.config import Settings

# An optional `+` and 8-15 digits (E.164 at most), single spaces or dashes allowed between
# digits as people write them ("010-1234-5678"); the claim is kept as sent.
PHONE_NUMBER = re.compile(r"\+?[0-9]+(?:[ -][0-9]+)*")
PHONE_DIGITS = range(8, 16)
NAME_LENGTH = range(1, 101)
# Controls, format characters (bidi overrides, soft hyphens: they disguise what a name
# reads as), lone surrogates and line/paragraph separators never belong in a name...
REFUSED_IN_NAMES = {"Cc", "Cf", "Cs", "Zl", "Zp"}
# ...except the zero-width (non-)joiners that Persian and Indic names and emoji need.
JOINERS = {"\u200c", "\u200d"}


class TokenRefused(jwt.InvalidTokenError):
    """A token signed with our secret that the token policy still refuses."""


def _check_lifetime(exp: object, max_lifetime: int) -> None:
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise TokenRefused("the exp claim must be a number")
    # A comparison, not `exp - now`: an exp of 10**400 is a valid JSON integer.
    if exp > time.time() + max_lifetime:
        raise TokenRefused(f"the token must expire within {max_lifetime} seconds")


def _check_phone_number(value: object) -> None:
    if not isinstance(value, str) or not PHONE_NUMBER.fullmatch(value):
        raise TokenRefused("phone_number must be an optional + and 8-15 digits")
    if sum(char.isdigit() for char in value) not in PHONE_DIGITS:
        raise TokenRefused("phone_number must be an optional + and 8-15 digits")


def _check_name(value: object) -> None:
    if not isinstance(value, str) or len(value) not in NAME_LENGTH:
        raise TokenRefused("name must be 1-100 characters")
    if any(unicodedata.category(char) in REFUSED_IN_NAMES and char not in JOINERS
           for char in value):
        raise TokenRefused("name must not contain control characters")


class TokenVerifier:
    """Decodes and verifies JWTs, remembering the claims of tokens already verified.

    A client sends the same token with every request; verifying it again each time cost
    a tenth of a simple request's CPU. The cache is keyed by the whole token, signature
    included, and holds only tokens that passed every rule, so only a token accepted
    before can hit it. `exp` is checked on every use, so a remembered token expires
    exactly when it would have; the lifetime limit is a rule about how the token was
    issued, checked once, when it is first seen.
    """

    def __init__(
        self, secret: str, *, audience: str | None = None, issuer: str | None = None,
        max_lifetime_seconds: int = 86_400, cache_size: int = 100_000,
    ) -> None:
        self._secret = secret
        self._audience = audience
        self._issuer = issuer
        self._max_lifetime = max_lifetime_seconds
        configured = {"aud": audience, "iss": issuer}
        self._required = ["exp", "sub", *(claim for claim, value in configured.items() if value is not None)]
        self._cache_size = cache_size
        self._verified: dict[str, dict[str, Any]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenVerifier":
        return cls(
            settings.auth_jwt_secret, audience=settings.auth_jwt_audience,
            issuer=settings.auth_jwt_issuer,
            max_lifetime_seconds=settings.auth_jwt_max_lifetime_seconds,
        )

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims; raises jwt.PyJWTError (ExpiredSignatureError when expired)."""
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] <= time.time():
                self._verified.pop(token, None)
                raise jwt.ExpiredSignatureError("Signature has expired")
            return claims
        claims = self._verify(token)
        if len(self._verified) >= self._cache_size:
            self._verified.clear()
        self._verified[token] = claims
        return claims

    def _verify(self, token: str) -> dict[str, Any]:
        # Without a configured audience PyJWT refuses any token that names one.
        claims: dict[str, Any] = jwt.decode(
            token, self._secret, algorithms=["HS256"], audience=self._audience,
            issuer=self._issuer,
            options={"require": self._required, "verify_aud": self._audience is not None},
        )
        _check_lifetime(claims["exp"], self._max_lifetime)
        # A null contact claim is one not given (OpenID Connect Core §5.3.2).
        if claims.get("phone_number") is not None:
            _check_phone_number(claims["phone_number"])
        if claims.get("name") is not None:
            _check_name(claims["name"])
        return claims
