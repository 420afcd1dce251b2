"""Scenarios of `python -m bench`: each starts the stack, loads it, checks it, reports."""
