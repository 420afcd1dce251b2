"""Ticket saga worker: venue registration, or compensation of the payment."""
