"""Kalshi Trade API v2 client."""
