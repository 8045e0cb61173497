"""The pipeline's Dramatiq actors. ``dramatiq actors.worker:start --queues NS.STAGE`` runs them;
importing this package declares nothing and connects to nothing."""
