"""Verifying the gateway's HS256 JWTs, each distinct token once."""

import time
from typing import Any

import jwt


class TokenVerifier:
    """Decodes and verifies JWTs, remembering the claims of tokens already verified.

    A client sends the same token with every request; verifying it again each time cost
    a tenth of a simple request's CPU. The cache is keyed by the whole token, signature
    included, so only a token verified before can hit it, and `exp` is checked on every
    use, so a remembered token expires exactly when it would have.
    """

    def __init__(self, secret: str, cache_size: int = 100_000) -> None:
        self._secret = secret
        self._cache_size = cache_size
        self._verified: dict[str, dict[str, Any]] = {}

    def claims(self, token: str) -> dict[str, Any]:
        """The token's claims; raises jwt.PyJWTError (ExpiredSignatureError when expired)."""
        claims = self._verified.get(token)
        if claims is not None:
            if claims["exp"] <= time.time():
                del self._verified[token]
                raise jwt.ExpiredSignatureError("Signature has expired")
            return claims
        claims = jwt.decode(token, self._secret, algorithms=["HS256"], options={"require": ["exp", "sub"]})
        if isinstance(claims.get("exp"), int | float):
            if len(self._verified) >= self._cache_size:
                self._verified.clear()
            self._verified[token] = claims
        return claims
