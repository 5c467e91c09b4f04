"""Extract: read records from the HIS database incrementally."""
