"""Features computed from market data in Python (the SQL panels live in the store's views)."""
