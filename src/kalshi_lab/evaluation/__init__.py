"""Scores of a model and its baselines on the same validation rows."""
