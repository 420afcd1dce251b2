"""The ledger chaos run (`make chaos`): book tickets while the system is hurt, then prove
with a ledger that nothing was lost, done twice or left stuck."""
