"""Notifier worker entry point; the logic lives in services/notifier."""
