"""Run reliability: atomic checkpoints, resuming, non-finite step guard, W&B fallback, sweep
failure records, test-set hashes, provenance and config validation (see docs/reliability.md)."""
