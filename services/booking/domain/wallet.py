"""Point balances: a wallet never goes negative nor above its limit."""

from services.booking.domain.errors import BalanceLimitExceeded, InsufficientPoints

BALANCE_LIMIT = 100_000_000


def balance_after_charge(balance: int, amount: int) -> int:
    after = balance + amount
    if after > BALANCE_LIMIT:
        raise BalanceLimitExceeded(
            f"charging {amount} would bring the balance to {after}, above {BALANCE_LIMIT}"
        )
    return after


def balance_after_payment(balance: int, amount: int) -> int:
    if balance < amount:
        raise InsufficientPoints(f"the price is {amount} points; the balance is {balance}")
    return balance - amount


def balance_after_refund(balance: int, amount: int) -> int:
    """A refund is owed, yet a wallet above its limit is still refused; someone must look."""
    return balance_after_charge(balance, amount)
