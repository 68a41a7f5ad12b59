"""Fetching raw market data from Kalshi's API into the raw layout of kalshi_lab.data.raw_store."""
