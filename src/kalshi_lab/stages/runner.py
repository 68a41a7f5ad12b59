"""The common shell of every stage: logging, and one clear message with exit code 2 on bad input."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from kalshi_lab.errors import KalshiLabError

logger = logging.getLogger("kalshi_lab")


def run_stage(name: str, body: Callable[[], None]) -> None:
    """Run ``body``; a KalshiLabError becomes ``error: <message>`` on stderr and exit code 2.

    Outputs are written through :class:`kalshi_lab.io.StagedOutputs`, so a failing stage leaves
    none of them behind. Other exceptions are bugs and keep their traceback.
    """
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {name} %(levelname)s %(message)s")
    try:
        body()
    except KalshiLabError as exc:
        print(f"error: {name}: {exc}", file=sys.stderr)
        sys.exit(2)
