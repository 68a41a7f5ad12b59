"""Measure the default simulator against the Kalshi figures it is calibrated to.

Run on demand (not a test)::

    uv run python benchmarks/simulator_calibration.py [--markets 3000] [--seeds 7 8 9]
        [--start 2025-01-01] [--end 2025-05-31]

The default ``data`` config (conf/) at a size of our choosing, one simulation per seed; each
figure is printed as the mean over seeds and its range, as the rows of the table in
docs/simulator_calibration.md. The measurements are :mod:`kalshi_lab.simulator.calibration`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable

import numpy as np

from common import data_params
from kalshi_lab.simulator import Simulation, simulate
from kalshi_lab.simulator import calibration as cal
from kalshi_lab.simulator import mid_takers as takers

INF = math.inf
HORIZONS = (0.0, 1.0, 3.0, 7.0, 14.0, INF)

#: row label -> measurement of one simulation
ROWS: dict[str, Callable[[Simulation], float]] = {
    "takers' excess return per contract, expected (%)": lambda s: (
        100 * cal.taker_return(s).expected
    ),
    "takers' excess return per contract, realised (%)": lambda s: (
        100 * cal.taker_return(s).realised
    ),
    "takers' return after fees, realised (%)": lambda s: (
        100 * cal.taker_return(s).realised_after_fees
    ),
    "bought at 5c: win rate, expected (%)": lambda s: 100 * cal.bought_at(s, 5).expected,
    "bought at 5c: win rate, realised (%)": lambda s: 100 * cal.bought_at(s, 5).realised,
    "bought at 95c: win rate, expected (%)": lambda s: 100 * cal.bought_at(s, 95).expected,
    "quoted 3-7c, > 14 days to close: win rate / price": lambda s: (
        cal.quoted_at(s, 0.03, 0.07, (cal.FAR_DAYS, INF)).ratio
    ),
    "quoted 3-7c, < 2 days to close: win rate / price": lambda s: (
        cal.quoted_at(s, 0.03, 0.07, (0.0, cal.NEAR_DAYS)).ratio
    ),
    **{
        f"Brier of the mid, {lo:g}-{hi:g} days to close": (
            lambda s, i=i: cal.brier_by_horizon(s, HORIZONS)[i][0]
        )
        for i, (lo, hi) in enumerate(zip(HORIZONS[:-1], HORIZONS[1:], strict=True))
    },
    "log-odds error of the mid (abs), mid 10-90c, > 14 days to close": lambda s: cal.log_odds_error(
        s, (cal.FAR_DAYS, INF)
    ),
    "log-odds error of the mid (abs), mid 10-90c, < 2 days to close": lambda s: cal.log_odds_error(
        s, (0.0, cal.NEAR_DAYS)
    ),
    "mean spread (cents)": lambda s: cal.microstructure(s).mean_spread_cents,
    "mean spread at a 40-60c mid (cents)": lambda s: cal.microstructure(s).spread_near_50_cents,
    "mean spread below a 10c mid (cents)": lambda s: cal.microstructure(s).spread_below_10_cents,
    "median touch depth (contracts)": lambda s: cal.microstructure(s).median_touch_depth,
    "recalibrated-mid taker at 3-97c, expected P&L (cents/contract)": lambda s: (
        takers.recalibrated_mid_taker(s).expected_per_contract
    ),
    "recalibrated-mid taker at 3-97c, realised P&L (cents/contract)": lambda s: (
        takers.recalibrated_mid_taker(s).realised_per_contract
    ),
    "recalibrated-mid taker at 98-99c, expected P&L (cents/contract)": lambda s: (
        takers.recalibrated_mid_taker(s, paid_cents=(98, 99)).expected_per_contract
    ),
    "YES at the ask every day, expected P&L (cents/contract)": lambda s: (
        takers.always_yes_taker(s).expected_per_contract
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=3000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[7, 8, 9])
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--end", default="2025-05-31")
    args = parser.parse_args()
    base = data_params(args.markets, args.start, args.end)
    assert base.synthetic is not None
    values: dict[str, list[float]] = {name: [] for name in ROWS}
    for seed in args.seeds:
        syn = dataclasses.replace(base.synthetic, seed=seed)
        sim = simulate(dataclasses.replace(base, synthetic=syn))
        for name, measure in ROWS.items():
            values[name].append(float(measure(sim)))
    print(f"{args.markets} markets, {args.start} to {args.end}, seeds {args.seeds}")
    print("| measure | mean | range over seeds |")
    print("|---|---|---|")
    for name, vals in values.items():
        v = np.array(vals)
        print(f"| {name} | {v.mean():.4g} | {v.min():.4g} to {v.max():.4g} |")


if __name__ == "__main__":
    main()
