"""Latency sensitivity that means something: a delayed run is a number only if it saw news.

The backtest's latency rows act on every decision ``k`` hours later (:func:`delayed`). That
tests how fast an edge decays only if the later decisions find later quotes. On data quoted by
daily candles alone (real closed history: Kalshi keeps no past books) a decision 6 or 12 hours
after midnight finds the very candle the undelayed decision saw, and its return is the
undelayed one replayed with a few markets closed meanwhile: robustness that was never tested.

A delayed decision's quote is **fresh** when its quote time is after the undelayed decision
time (``as_of - k``). That is exactly "fresher than the quote the undelayed decision saw": the
exchange quotes from the freshest snapshot or candle at or before the time asked, so a quote
stamped at or before ``as_of - k`` is the one the undelayed decision had. Two shares of the
delayed run are measured:

* ``fresh_quote_share``: of its decisions on markets open and quoted at the delayed time;
* ``fresh_fill_share``: of its fills (an order's ``decided_at - k``), because a strategy keeps
  trading where the quote did not move (the edge it saw is still there) and stops where it
  did, so its fills can be stale where most of its decisions are fresh.

The run is **measurable** when both are at least :data:`MIN_FRESH_SHARE` (a run without fills
by its decisions alone: finding no edge on fresh quotes is a result). Otherwise its return is
reported as null with the reason: more than half of it would be the undelayed run replayed.
"""

from __future__ import annotations

import pandas as pd

from kalshi_lab.backtest.loop import (
    MarketTables,
    backtest_quietly,
    predicted_tickers,
    read_stage_predictions,
)
from kalshi_lab.backtest.report import BacktestResult
from kalshi_lab.params import Params

#: the least share of fresh quotes, among the delayed run's decisions and among its fills,
#: for its return to say something about latency: below half, most of it replays the quotes
#: the undelayed run saw
MIN_FRESH_SHARE = 0.5


def delayed(predictions: pd.DataFrame, hours: float) -> pd.DataFrame:
    """The same predictions acted on ``hours`` later: each decision at as_of + hours, against
    the quotes then (the close known at the prediction unchanged). How fast an edge decays."""
    return predictions.assign(as_of=predictions["as_of"] + pd.Timedelta(hours=hours))


def fresh_shares(result: BacktestResult, hours: float) -> tuple[float | None, float | None]:
    """(fresh_quote_share, fresh_fill_share) of a run of :func:`delayed` predictions, each None
    when there is nothing to count (no decision on an open, quoted market; no fill)."""
    lag = pd.Timedelta(hours=hours)
    seen = result.decision_quotes
    quoted = seen[seen["is_open"] & seen["quote_ts"].notna()]
    fills = result.fills

    def share(fresh: pd.Series) -> float | None:
        return float(fresh.mean()) if len(fresh) else None

    return (
        share(quoted["quote_ts"] > quoted["as_of"] - lag),
        share(fills["quote_ts"] > fills["decided_at"] - lag),
    )


def latency_row(result: BacktestResult, hours: float) -> dict[str, object]:
    """A latency row of backtest_detail.json for a run of :func:`delayed` predictions.

    ``return`` (the run's total return, None when not measurable), ``measurable``, the two
    shares and ``reason`` (None when measurable).
    """
    quote_share, fill_share = fresh_shares(result, hours)
    reason = None
    if quote_share is None:
        reason = "no delayed decision found an open market with a quote"
    elif quote_share < MIN_FRESH_SHARE or (fill_share is not None and fill_share < MIN_FRESH_SHARE):
        fills = "no fills" if fill_share is None else f"{fill_share:.0%} of its fills'"
        reason = (
            f"{quote_share:.0%} of the delayed decisions' quotes and {fills} are newer than the "
            f"undelayed decision (at least {MIN_FRESH_SHARE:.0%} of each needed): the run would "
            "mostly replay the quotes the undelayed run saw (daily candles only?)"
        )
    return {
        "return": result.summary["total_return"] if reason is None else None,
        "measurable": reason is None,
        "fresh_quote_share": quote_share,
        "fresh_fill_share": fill_share,
        "reason": reason,
    }


def undelayed_row(result: BacktestResult) -> dict[str, object]:
    """The run itself in the latency rows' shape: measured by definition, no shares."""
    return {
        "return": result.summary["total_return"],
        "measurable": True,
        "fresh_quote_share": None,
        "fresh_fill_share": None,
        "reason": None,
    }


def delayed_rows(
    params: Params, predictions: pd.DataFrame, tables: MarketTables
) -> dict[str, dict[str, object]]:
    """``{"<hours>h": latency_row}`` for each of ``params.backtest.latency_hours``, in order:
    the validation ``predictions`` acted on that much later, replayed on ``tables``."""
    return {
        f"{hours:g}h": latency_row(
            backtest_quietly(params, delayed(predictions, hours), tables), hours
        )
        for hours in params.backtest.latency_hours
    }


def delayed_rows_of_stage_inputs(params: Params) -> dict[str, dict[str, object]]:
    """:func:`delayed_rows` on the backtest stage's inputs, read here: the work a worker
    process does beside the stage (only ``params`` travels to it, only the rows come back).
    The tables hold every predicted market, test period's included, as the stage's do."""
    predictions, test = read_stage_predictions()
    tables = MarketTables.read(params.backtest, predicted_tickers(predictions, test))
    return delayed_rows(params, predictions, tables)
