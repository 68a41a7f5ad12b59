"""How much a backtest's P&L can be trusted: a release bootstrap, concentration, price buckets.

A backtest is one path. Its events are not independent units: an event's strikes settle
together, and so do the events of one data release (one series family closing on one date,
:mod:`kalshi_lab.resolution`), and the strategy's positions in them are correlated. So the
P&L's sampling error is estimated by resampling releases with replacement: the total P&L of
each resample, as a return on the initial capital, gives a 95 % interval and the probability of
having lost money. A run whose gains come from two events is fragile however high its return:
the share of the gains made by the few best events says so. P&L by price paid and by event
structure say where it came from.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import OTHER, STRUCTURES
from kalshi_lab.resolution import release_clusters

#: price paid per contract (dollars) bucket edges: longshots, the middle, favourites
PRICE_BUCKETS = (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0)
TOP_EVENTS = 3


def event_pnl(positions: pd.DataFrame) -> pd.DataFrame:
    """P&L after fees per event, best first, from BacktestResult.positions.

    Columns: event_ticker, pnl (dollars), n_positions.
    """
    out = positions.groupby("event_ticker", sort=True).agg(
        pnl=("pnl", "sum"), n_positions=("pnl", "size")
    )
    return out.sort_values("pnl", ascending=False, kind="stable").reset_index()


def release_pnl(by_event: pd.DataFrame, markets: pd.DataFrame) -> np.ndarray:
    """P&L per release from the P&L per event (:func:`event_pnl`): the resampling unit of
    :func:`bootstrap_return`. ``markets`` (event_ticker, series_ticker, close_time) gives each
    event's release; an event missing from it is a release of its own."""
    release = pd.Series(release_clusters(markets), index=markets["event_ticker"].astype(str))
    events = by_event["event_ticker"].astype(str)
    keys = events.map(release[~release.index.duplicated()]).fillna(events)
    return by_event.groupby(keys.to_numpy(), sort=True)["pnl"].sum().to_numpy()


def bootstrap_return(
    pnl_by_release: np.ndarray, initial_cash: float, samples: int, seed: int
) -> dict[str, float]:
    """Release-bootstrap interval of the total return (:func:`release_pnl`), and the share of
    resamples that lost.

    Without releases (no trade) the return is 0 with certainty.
    """
    pnl = np.asarray(pnl_by_release, dtype=float)
    if len(pnl) == 0:
        return {"return_ci_low": 0.0, "return_ci_high": 0.0, "p_loss": 0.0}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(pnl), size=(samples, len(pnl)))
    totals = pnl[draws].sum(axis=1) / initial_cash
    low, high = np.quantile(totals, [0.025, 0.975])
    return {
        "return_ci_low": float(low),
        "return_ci_high": float(high),
        "p_loss": float(np.mean(totals <= 0.0)),
    }


def top_event_share(pnl_by_event: np.ndarray, k: int = TOP_EVENTS) -> float:
    """Share of the gains (the winning events' P&L) made by the ``k`` best events; 0 without
    gains. Near 1: the run rests on a handful of events."""
    pnl = np.sort(np.asarray(pnl_by_event, dtype=float))[::-1]
    gains = pnl[pnl > 0]
    return float(gains[:k].sum() / gains.sum()) if len(gains) else 0.0


def pnl_by_price(fills: pd.DataFrame, positions: pd.DataFrame) -> pd.DataFrame:
    """P&L after fees by the price paid: each market side's contract-weighted average buy
    price picks its bucket (PRICE_BUCKETS, dollars), and its positions' P&L goes there.

    Columns: bucket ("0.00-0.10", ...), pnl (dollars), n_positions, contracts.
    """
    labels = [f"{lo:.2f}-{hi:.2f}" for lo, hi in itertools.pairwise(PRICE_BUCKETS)]
    buys = fills[fills["action"] == "buy"]
    paid = buys.assign(value=buys["price"] * buys["count"]).groupby(["ticker", "side"])
    price = (paid["value"].sum() / paid["count"].sum()).rename("price")
    contracts = paid["count"].sum().rename("contracts")
    by_side = positions.groupby(["ticker", "side"]).agg(
        pnl=("pnl", "sum"), n_positions=("pnl", "size")
    )
    sides = by_side.join(price, how="inner").join(contracts, how="inner")
    bucket = pd.cut(sides["price"], PRICE_BUCKETS, labels=labels, include_lowest=True)
    out = sides.groupby(bucket, observed=False)[["pnl", "n_positions", "contracts"]].sum()
    out.index = out.index.astype(str).rename("bucket")
    return out.reset_index().astype({"n_positions": int, "contracts": int})


def pnl_by_structure(
    fills: pd.DataFrame, positions: pd.DataFrame, markets: pd.DataFrame
) -> dict[str, dict[str, float | int]]:
    """P&L after fees by the structure of the markets' events (STRUCTURES order, those traded):
    events, positions, contracts bought, fees paid and P&L (dollars) of each.

    ``markets`` is the markets table (ticker, structure); a ticker missing from it counts as
    ``other``.
    """
    of = pd.Series(markets["structure"].to_numpy(), index=markets["ticker"].astype(str))

    def structure(tickers: pd.Series) -> pd.Series:
        return tickers.astype(str).map(of).fillna(OTHER)

    buys = fills[fills["action"] == "buy"]
    by_fills = (
        pd.DataFrame(
            {
                "contracts": buys["count"].to_numpy(),
                "structure": structure(buys["ticker"]).to_numpy(),
            }
        )
        .groupby("structure")["contracts"]
        .sum()
    )
    fees = fills.groupby(structure(fills["ticker"]).to_numpy())["fee"].sum()
    held = positions.assign(structure=structure(positions["ticker"]).to_numpy())
    out = {}
    for name, group in held.groupby("structure", sort=False):
        out[name] = {
            "n_events": int(group["event_ticker"].nunique()),
            "n_positions": len(group),
            "contracts": int(by_fills.get(name, 0)),
            "fees_paid": float(fees.get(name, 0.0)),
            "pnl": float(group["pnl"].sum()),
        }
    return {name: out[name] for name in STRUCTURES if name in out}
