"""A wallet never goes negative nor above its limit: charges, payments, refunds."""

from datetime import UTC, datetime

import pytest

from services.booking.domain.errors import BalanceLimitExceeded, InsufficientPoints
from services.booking.domain.wallet import (
    BALANCE_LIMIT,
    balance_after_charge,
    balance_after_payment,
    balance_after_refund,
)
from services.booking.service_layer.points import charge
from tests.unit.fake_unit_of_work import Database

pytestmark = pytest.mark.unit


def test_a_charge_may_fill_the_wallet_to_its_limit_and_no_further() -> None:
    assert balance_after_charge(BALANCE_LIMIT - 5, 5) == BALANCE_LIMIT
    with pytest.raises(BalanceLimitExceeded):
        balance_after_charge(BALANCE_LIMIT - 5, 6)


def test_a_payment_may_empty_the_wallet_and_no_further() -> None:
    assert balance_after_payment(700, 700) == 0
    with pytest.raises(InsufficientPoints):
        balance_after_payment(699, 700)


def test_a_refund_is_bound_by_the_limit_too() -> None:
    assert balance_after_refund(100, 50) == 150
    with pytest.raises(BalanceLimitExceeded):
        balance_after_refund(BALANCE_LIMIT, 1)


async def test_charging_records_the_movement_and_a_refused_charge_records_nothing() -> None:
    db = Database()
    now = datetime(2027, 1, 1, tzinfo=UTC)
    async with db.unit_of_work() as uow:
        assert await charge(uow, "ann", 40, now) == 40
    with pytest.raises(BalanceLimitExceeded):
        async with db.unit_of_work() as uow:
            await charge(uow, "ann", BALANCE_LIMIT, now)

    assert db.tables.wallets == {"ann": 40}
    assert db.tables.history == [("ann", "CHARGE", 40, 40)]
