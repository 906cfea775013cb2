"""Source-format adapters (MSD, ISLES) and deterministic toy-archive generators."""
