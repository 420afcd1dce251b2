"""Token-expiry consumer: applies QueueTokenExpired events to the waiting room in Redis."""
