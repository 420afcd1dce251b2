"""Token-expiry sweeper: removes the queue tokens payments spent from the waiting rooms in Redis."""
