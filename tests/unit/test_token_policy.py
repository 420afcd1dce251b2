"""The token policy of API.md §1, rule by rule, on the verifier alone (no server)."""

import json
import time
from types import SimpleNamespace
from typing import Any

import jwt
import pytest

from services.booking.entrypoints.api import auth
from services.booking.entrypoints.api.auth import TokenRefused, TokenVerifier

pytestmark = pytest.mark.unit

SECRET = "unit-secret-" + "s" * 20
AUDIENCE = "booking-api"
ISSUER = "https://gateway.example.test"


def signed(secret: str = SECRET, expires_in: float = 600, **claims: Any) -> str:
    """Any claims at all, signed (jwt.encode itself refuses some odd ones)."""
    payload = {"sub": "user-1", "exp": int(time.time() + expires_in), **claims}
    return jwt.api_jws.encode(json.dumps(payload).encode(), secret, algorithm="HS256")


def strict() -> TokenVerifier:
    return TokenVerifier(SECRET, audience=AUDIENCE, issuer=ISSUER)


def refused(verifier: TokenVerifier, token: str) -> jwt.InvalidTokenError:
    """The error for `token`, twice over: a refusal is never remembered as a success."""
    with pytest.raises(jwt.InvalidTokenError) as first:
        verifier.claims(token)
    with pytest.raises(type(first.value)):
        verifier.claims(token)
    return first.value


def test_a_policy_refusal_is_an_invalid_token_the_api_maps_to_401() -> None:
    assert issubclass(TokenRefused, jwt.InvalidTokenError)
    assert issubclass(TokenRefused, jwt.PyJWTError)
    assert not issubclass(TokenRefused, jwt.ExpiredSignatureError)


def test_a_plain_token_passes_the_default_policy() -> None:
    claims = TokenVerifier(SECRET).claims(signed(role="admin"))
    assert claims["sub"] == "user-1" and claims["role"] == "admin"


# --- audience and issuer --------------------------------------------------------------


@pytest.mark.parametrize("aud", ["booking-api", "someone-else", ["a", "b"], ""])
def test_without_a_configured_audience_any_aud_is_accepted(aud: Any) -> None:
    assert TokenVerifier(SECRET).claims(signed(aud=aud))["aud"] == aud


@pytest.mark.parametrize("iss", ["https://gateway.example.test", "anyone"])
def test_without_a_configured_issuer_any_iss_is_accepted(iss: str) -> None:
    assert TokenVerifier(SECRET).claims(signed(iss=iss))["iss"] == iss


@pytest.mark.parametrize("aud", [AUDIENCE, ["other", AUDIENCE]])
def test_a_matching_audience_and_issuer_are_accepted(aud: Any) -> None:
    claims = strict().claims(signed(aud=aud, iss=ISSUER))
    assert claims["aud"] == aud and claims["iss"] == ISSUER


@pytest.mark.parametrize(("claims", "error"), [
    ({"iss": ISSUER}, jwt.MissingRequiredClaimError),
    ({"aud": None, "iss": ISSUER}, jwt.MissingRequiredClaimError),
    ({"aud": "", "iss": ISSUER}, jwt.MissingRequiredClaimError),
    ({"aud": "booking-api2", "iss": ISSUER}, jwt.InvalidAudienceError),
    ({"aud": "Booking-API", "iss": ISSUER}, jwt.InvalidAudienceError),
    ({"aud": ["other"], "iss": ISSUER}, jwt.InvalidAudienceError),
    ({"aud": 7, "iss": ISSUER}, jwt.InvalidAudienceError),
    ({"aud": AUDIENCE}, jwt.MissingRequiredClaimError),
    ({"aud": AUDIENCE, "iss": None}, jwt.MissingRequiredClaimError),
    ({"aud": AUDIENCE, "iss": "https://evil.example.test"}, jwt.InvalidIssuerError),
    ({"aud": AUDIENCE, "iss": ISSUER + "/"}, jwt.InvalidIssuerError),
    ({"aud": AUDIENCE, "iss": [ISSUER]}, jwt.InvalidIssuerError),
])
def test_a_configured_audience_and_issuer_are_required_and_must_match(
    claims: dict[str, Any], error: type[Exception]
) -> None:
    assert isinstance(refused(strict(), signed(**claims)), error)


def test_audience_and_issuer_are_checked_independently() -> None:
    only_audience = TokenVerifier(SECRET, audience=AUDIENCE)
    assert only_audience.claims(signed(aud=AUDIENCE))["aud"] == AUDIENCE
    refused(only_audience, signed())
    only_issuer = TokenVerifier(SECRET, issuer=ISSUER)
    assert only_issuer.claims(signed(iss=ISSUER, aud="whatever"))["iss"] == ISSUER
    refused(only_issuer, signed(aud="whatever"))


# --- lifetime ------------------------------------------------------------------------------


def test_a_token_within_the_maximum_lifetime_is_accepted() -> None:
    assert TokenVerifier(SECRET).claims(signed(expires_in=86_400 - 5))
    assert TokenVerifier(SECRET, max_lifetime_seconds=60).claims(signed(expires_in=55))


@pytest.mark.parametrize(("max_lifetime", "expires_in"), [
    (86_400, 86_400 + 5), (86_400, 10 * 365 * 86_400), (60, 65), (1, 30),
])
def test_a_token_living_longer_than_the_maximum_is_refused(max_lifetime: int, expires_in: int) -> None:
    verifier = TokenVerifier(SECRET, max_lifetime_seconds=max_lifetime)
    error = refused(verifier, signed(expires_in=expires_in))
    assert isinstance(error, TokenRefused) and str(max_lifetime) in str(error)


@pytest.mark.parametrize("exp", [10**400, 1e308, "9999999999", True])
def test_an_absurd_exp_is_refused_not_crashed_on(exp: Any) -> None:
    refused(TokenVerifier(SECRET), signed(exp=exp))


def test_the_lifetime_is_judged_when_the_token_is_first_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(SECRET, max_lifetime_seconds=60)
    token = signed(expires_in=50)
    now = time.time()
    assert verifier.claims(token)
    # Remembered, it is not judged again, and it still expires on time.
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: now + 30))
    assert verifier.claims(token)
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: now + 51))
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.claims(token)


# --- contact claims -----------------------------------------------------------------------


@pytest.mark.parametrize("phone", [
    "+821012345678", "01012345678", "010-1234-5678", "+82 10-1234-5678", "+82 10 1234 5678",
    "12345678", "+123456789012345", "123456789012345",
])
def test_a_well_formed_phone_number_is_accepted_as_sent(phone: str) -> None:
    assert TokenVerifier(SECRET).claims(signed(phone_number=phone))["phone_number"] == phone


@pytest.mark.parametrize("phone", [
    "1234567", "+1234567", "1234567890123456", "+1234567890123456", "9" * 5000, "", "+",
    "010--1234-5678", "-01012345678", "01012345678-", " 01012345678", "01012345678 ",
    "010\t1234\t5678", "01012345678\n", "++821012345678", "82+1012345678", "(010) 1234 5678",
    "010.1234.5678", "+82\x0010", "+82\udfff", "\uff10\uff11\uff10" + "\uff11" * 8,  # fullwidth digits
    "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668",  # Arabic-Indic digits
    "010-1234-567a", 821012345678, ["010"], {"number": "01012345678"}, True,
])
def test_a_malformed_phone_number_refuses_the_token(phone: Any) -> None:
    error = refused(TokenVerifier(SECRET), signed(phone_number=phone))
    assert isinstance(error, TokenRefused) and "phone_number" in str(error)


@pytest.mark.parametrize("name", [
    "김철수", "A", "x" * 100, "Zoë O'Brien-Smith", "José María",
    "\u0645\u062d\u0645\u062f\u200c\u0631\u0636\u0627",  # Persian: a zero-width non-joiner
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # one emoji of three, zero-width joiners
    "Jean Paul",
])
def test_a_reasonable_name_is_accepted_as_sent(name: str) -> None:
    assert TokenVerifier(SECRET).claims(signed(name=name))["name"] == name


@pytest.mark.parametrize("name", [
    "", "x" * 101, "가" * 101, "n" * 5000, "nul\x00name", "tab\tname", "line\nbreak", "cr\r",
    "\x1b[31mred", "del\x7f", "nel\x85", "line\u2028sep", "para\u2029sep", "rtl\u202eeman",
    "bidi\u2066isolate\u2069", "soft\u00adhyphen", "bom\ufeff", "lone \ud800 surrogate", 12,
    ["Lee"], {"given": "Lee"}, False,
])
def test_a_bad_name_refuses_the_token(name: Any) -> None:
    error = refused(TokenVerifier(SECRET), signed(name=name))
    assert isinstance(error, TokenRefused) and "name" in str(error)


def test_null_contact_claims_count_as_absent() -> None:
    claims = TokenVerifier(SECRET).claims(signed(name=None, phone_number=None))
    assert claims["name"] is None and claims["phone_number"] is None


# --- the cache ------------------------------------------------------------------------------


def test_a_refused_token_is_refused_however_often_it_comes() -> None:
    verifier = TokenVerifier(SECRET, audience=AUDIENCE)
    good = signed(aud=AUDIENCE, name="Lee")
    assert verifier.claims(good)
    for bad in (signed(aud="other"), signed(aud=AUDIENCE, name="Lee\x00"),
                signed(aud=AUDIENCE, expires_in=2 * 86_400), signed(secret="another-secret-" + "y" * 20)):
        for _ in range(3):
            with pytest.raises(jwt.InvalidTokenError):
                verifier.claims(bad)
    # The same claims under another signature are not the remembered token.
    header, payload, _ = good.split(".")
    with pytest.raises(jwt.InvalidSignatureError):
        verifier.claims(f"{header}.{payload}.{'A' * 43}")
    assert verifier.claims(good)["name"] == "Lee"


def test_a_remembered_token_expires_on_time(monkeypatch: pytest.MonkeyPatch) -> None:
    verifier = TokenVerifier(SECRET, cache_size=1)
    token, other = signed(expires_in=10), signed(expires_in=10, name="other")
    assert verifier.claims(token) and verifier.claims(other) and verifier.claims(token)
    later = time.time() + 11
    monkeypatch.setattr(auth, "time", SimpleNamespace(time=lambda: later))
    with pytest.raises(jwt.ExpiredSignatureError):
        verifier.claims(token)


def test_an_expired_token_is_refused_as_expired() -> None:
    with pytest.raises(jwt.ExpiredSignatureError):
        TokenVerifier(SECRET).claims(signed(expires_in=-5))
