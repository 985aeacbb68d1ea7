"""Pre-trade risk: every intent passes these rules or is denied with a reason."""
