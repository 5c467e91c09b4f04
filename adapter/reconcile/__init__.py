"""Reconciliation against the centre's totals (reference §3.10): 3201 per insurance type and
clearing type, 3202 drill-down where they do not balance, reports finance can close on."""
