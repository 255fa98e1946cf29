"""A stand-in Edge TPU for tests and benches (never used by the scripts themselves)."""
