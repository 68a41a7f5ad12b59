"""Benchmark: vectorised ``build_features`` against a per-market loop like the reference code's.

Run on demand (not a test)::

    uv run python benchmarks/bench_features.py --markets 10000 --days 365 --loop-markets 500

Synthetic tables of the requested size are generated with numpy (seeded), directly as
DataFrames with the columns of ``tables.MARKETS/CANDLES/TRADES`` (strings as Python objects,
as ``pd.read_parquet`` returns them; ``trade_id`` is left out, nothing reads it). The loop is
timed on the first ``--loop-markets`` tickers and extrapolated linearly to all markets unless
``--loop-markets 0`` times it on all of them. Both must agree on RET and VOLUME lags.

``build_features`` is called ``--repeat`` times: the first call in a process also pays for
the first touch of its ~1.5 GB of fresh memory, which on this VM costs about 1 s per GB (the
host backs guest pages lazily); later calls show the computation itself.
"""

from __future__ import annotations

import argparse
import logging
import resource
import time

import numpy as np
import pandas as pd

from kalshi_lab.features import build_features
from kalshi_lab.features.panel import DAY_NS
from kalshi_lab.params import FeatureParams

FIRST_DAY = int(pd.Timestamp("2024-01-01", tz="UTC").value // DAY_NS)


def _utc(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.to_datetime(ns, unit="ns", utc=True)


def synthetic_tables(
    n_markets: int, n_days: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Markets with ``n_days`` daily candles each, staggered in time, ~2.5 trades a day.

    About 20 % of market-days have no trade (null candle price). Each market closes six hours
    into its last candle's day, so that partial day is a target only, as in real data.
    """
    rng = np.random.default_rng(seed)
    tickers = np.array([f"BENCH-{i:06d}" for i in range(n_markets)], dtype=object)
    strikes = rng.integers(1, 6, size=n_markets)
    event_of = np.repeat(np.arange(n_markets), strikes)[:n_markets]
    events = np.array([f"EV-{i:06d}" for i in range(n_markets)], dtype=object)[event_of]
    first_of_event = np.flatnonzero(np.r_[True, event_of[1:] != event_of[:-1]])
    size = np.diff(np.r_[first_of_event, n_markets])
    position = np.arange(n_markets) - np.repeat(first_of_event, size)
    ladder = np.repeat(size, size) > 1
    start = FIRST_DAY + rng.integers(0, n_days, size=n_markets)

    cell_market = np.repeat(np.arange(n_markets), n_days)
    as_of_day = start[cell_market] + np.tile(np.arange(1, n_days + 1), n_markets)
    logit = rng.normal(0, 1, (n_markets, 1)) + np.cumsum(
        rng.normal(0, 0.15, (n_markets, n_days)), axis=1
    )
    latent = (1 / (1 + np.exp(-logit))).ravel()

    n_trades = rng.poisson(3.0, size=len(cell_market))
    n_trades[rng.random(len(cell_market)) < 0.15] = 0
    cell = np.repeat(np.arange(len(cell_market)), n_trades)
    yes_price = np.clip(np.round(latent[cell] + rng.normal(0, 0.02, len(cell)), 2), 0.01, 0.99)
    count = rng.integers(1, 50, size=len(cell)).astype(np.float64)
    side = np.array(["no", "yes"], dtype=object)[rng.integers(0, 2, size=len(cell))]
    created = (as_of_day[cell] - 1) * DAY_NS + rng.integers(1, DAY_NS, size=len(cell))
    trades = pd.DataFrame(
        {
            "ticker": tickers[cell_market[cell]],
            "created_time": _utc(created),
            "count": count,
            "yes_price": yes_price,
            "no_price": np.round(1.0 - yes_price, 2),
            "taker_side": side,
        }
    )

    with np.errstate(invalid="ignore"):
        price_mean = np.bincount(cell, weights=yes_price, minlength=len(cell_market)) / n_trades
    volume = np.bincount(cell, weights=count, minlength=len(cell_market))
    half_spread = rng.integers(1, 4, size=len(cell_market)) / 100
    candles = pd.DataFrame(
        {
            "ticker": tickers[cell_market],
            "period_minutes": np.full(len(cell_market), 1440, dtype=np.int32),
            "end_period_ts": _utc(as_of_day * DAY_NS),
            **{f"price_{f}": price_mean for f in ("open", "high", "low", "close", "mean")},
            **{
                f"yes_bid_{f}": np.clip(np.round(latent - half_spread, 2), 0.0, 0.99)
                for f in ("open", "high", "low", "close")
            },
            **{
                f"yes_ask_{f}": np.clip(np.round(latent + half_spread, 2), 0.01, 1.0)
                for f in ("open", "high", "low", "close")
            },
            "volume": volume,
            "open_interest": np.cumsum(volume.reshape(n_markets, n_days) * 0.3, axis=1).ravel(),
        }
    )

    last_as_of = (start + n_days) * DAY_NS
    markets = pd.DataFrame(
        {
            "ticker": tickers,
            "event_ticker": events,
            "series_ticker": "BENCH",
            "market_type": "binary",
            "status": "finalized",
            "result": np.array(["no", "yes"], dtype=object)[rng.integers(0, 2, size=n_markets)],
            "open_time": _utc(start * DAY_NS),
            "close_time": _utc(last_as_of - DAY_NS + 6 * 3600 * 10**9),
            "settlement_ts": _utc(last_as_of),
            "can_close_early": False,
            "latest_expiration_time": _utc(last_as_of + 7 * DAY_NS),
            # an event of several strikes is a ladder ("above" its position), one a binary
            "structure": np.where(ladder, "ladder", "binary").astype(object),
            "strike_type": np.where(ladder, "greater", None).astype(object),
            "floor_strike": np.where(ladder, position, np.nan),
            "cap_strike": np.nan,
        }
    )
    return markets, candles, trades


def reference_loop(
    candles: pd.DataFrame, trades: pd.DataFrame, params: FeatureParams, tickers: list[str]
) -> pd.DataFrame:
    """The reference research code's shape: per ticker resample, ffill, pct_change, shift.

    Given its best case: tables are split by ticker once (the reference fetched per ticker),
    and the day alignment is the correct one (closed/label right), so the values must match.
    """
    daily = candles[(candles["period_minutes"] == 1440) & candles["ticker"].isin(tickers)]
    yes = trades[(trades["taker_side"] == "yes") & trades["ticker"].isin(tickers)]
    candles_of = dict(tuple(daily.groupby("ticker", sort=False)))
    yes_of = dict(tuple(yes.groupby("ticker", sort=False)))
    frames = []
    for ticker in tickers:
        c = candles_of[ticker].set_index("end_period_ts")
        price = c["price_mean"].resample("D", closed="right", label="right").mean().ffill()
        ret = price.clip(lower=params.min_price).pct_change(fill_method=None)
        t = yes_of.get(ticker)
        value = pd.Series(0.0, index=price.index)
        if t is not None:
            traded = pd.Series((t["count"] * t["yes_price"]).to_numpy(), index=t["created_time"])
            daily_value = traded.resample("D", closed="right", label="right").sum()
            value = daily_value.reindex(price.index, fill_value=0.0)
        frame = pd.DataFrame({"ticker": ticker}, index=price.index)
        for k in range(1, params.n_lags + 1):
            frame[f"RET_{k}"] = ret.shift(k - 1)
            frame[f"VOLUME_{k}"] = value.shift(k - 1)
        frames.append(frame)
    return pd.concat(frames).rename_axis("as_of").reset_index()


def compare(vectorised: pd.DataFrame, loop: pd.DataFrame, columns: list[str]) -> tuple[int, bool]:
    """Rows present in both (the loop also keeps the after-close day) and whether values agree."""
    keys = ["ticker", "as_of"]
    left = vectorised[keys + columns].assign(as_of=lambda d: d["as_of"].dt.as_unit("ns"))
    right = loop[keys + columns].assign(as_of=lambda d: d["as_of"].dt.as_unit("ns"))
    both = left.merge(right, on=keys, suffixes=("", "_loop"))
    same = all(
        np.allclose(both[c], both[f"{c}_loop"], rtol=1e-12, atol=1e-12, equal_nan=True)
        for c in columns
    )
    return len(both), same


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markets", type=int, default=10_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--loop-markets", type=int, default=500, help="0 = loop over all markets")
    parser.add_argument("--repeat", type=int, default=3, help="calls of build_features")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    params = FeatureParams(n_lags=10, volatility_window=7, min_price=0.01)

    t0 = time.perf_counter()
    markets, candles, trades = synthetic_tables(args.markets, args.days, args.seed)
    print(
        f"generated {len(markets):,} markets, {len(candles):,} candles, {len(trades):,} trades "
        f"in {time.perf_counter() - t0:.1f} s"
    )

    times = []
    for _ in range(args.repeat):
        features = None  # free the previous result before the next call
        t0 = time.perf_counter()
        features = build_features(markets, candles, trades, params)
        times.append(time.perf_counter() - t0)
    t_vec = min(times)
    print(
        f"vectorised build_features: {len(features):,} rows x {features.shape[1]} columns; "
        f"first call {times[0]:.2f} s, best of {len(times)} {t_vec:.2f} s "
        f"(all: {', '.join(f'{t:.2f}' for t in times)})"
    )

    n_loop = args.markets if args.loop_markets <= 0 else min(args.loop_markets, args.markets)
    tickers = sorted(markets["ticker"])[:n_loop]
    t0 = time.perf_counter()
    loop = reference_loop(candles, trades, params, tickers)
    t_loop = time.perf_counter() - t0
    t_loop_all = t_loop * args.markets / n_loop
    if n_loop < args.markets:
        print(
            f"per-market loop: {t_loop:.2f} s on {n_loop:,} markets -> EXTRAPOLATED linearly "
            f"to {t_loop_all:.1f} s for {args.markets:,} markets"
        )
    else:
        print(f"per-market loop: {t_loop:.2f} s on all {n_loop:,} markets (measured)")
    print(
        f"speed-up: {t_loop_all / t_vec:.0f}x against the best call, "
        f"{t_loop_all / times[0]:.0f}x against the first"
    )

    lags = ["RET_1", "VOLUME_1", f"RET_{params.n_lags}", f"VOLUME_{params.n_lags}"]
    n_rows, same = compare(features, loop, lags)
    print(f"{', '.join(lags)} on {n_rows:,} shared rows: {'identical' if same else 'DIFFERENT'}")
    print(f"peak RSS: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2:.1f} GB")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
