"""The clinic's booking rules, store and notifications: no web framework, no task queue."""
