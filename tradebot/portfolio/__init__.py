"""Cash, positions, PnL and equity, derived from fills only."""
