"""Which address a request is limited by: the peer's, or a trusted proxy's client."""

import ipaddress

import pytest

from services.booking.entrypoints.api.guards import client_address

pytestmark = pytest.mark.unit
PROXIES = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    ("192.0.2.1", None, "192.0.2.1"),
    ("192.0.2.1", "203.0.113.7", "192.0.2.1"),            # not a proxy of ours: header ignored
    ("10.1.2.3", "203.0.113.7", "203.0.113.7"),
    ("10.1.2.3", "198.51.100.1, 203.0.113.7, 10.9.9.9", "203.0.113.7"),  # nearest untrusted hop
    ("10.1.2.3", "10.0.0.5, 127.0.0.1", "10.0.0.5"),     # every hop trusted: the first one
    ("10.1.2.3", " , ", "10.1.2.3"),
    ("10.1.2.3", "not an address", "not an address"),
    (None, None, "unknown"),
])
def test_client_address(peer: str | None, forwarded: str | None, expected: str) -> None:
    assert client_address(peer, forwarded, PROXIES) == expected
