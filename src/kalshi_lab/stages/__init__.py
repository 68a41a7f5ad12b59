"""DVC stage entry points: ``python -m kalshi_lab.stages.<name>`` (see dvc.yaml)."""
