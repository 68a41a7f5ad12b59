"""backtest: replay the validation period through strategy -> executor -> exchange -> account.

Beside the run itself: a 95 % interval of its return and the chance it lost money (an event
bootstrap), the share of its gains from its best events, its return when every decision is
acted on ``backtest.latency_hours`` later (only where the later decisions found fresher quotes:
:mod:`kalshi_lab.backtest.latency`), and the same strategy on the held-out test period
(reported apart, in backtest_detail.json only: nothing should be tuned on it).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import pandas as pd

from kalshi_lab import figures, paths
from kalshi_lab.backtest import BacktestResult
from kalshi_lab.backtest.latency import (
    delayed_rows,
    delayed_rows_of_stage_inputs,
    undelayed_row,
)
from kalshi_lab.backtest.loop import (
    MarketTables,
    backtest_on,
    backtest_quietly,
    predicted_tickers,
    read_stage_predictions,
)
from kalshi_lab.backtest.report import EQUITY_COLUMNS, FILL_COLUMNS
from kalshi_lab.backtest.uncertainty import (
    bootstrap_return,
    event_pnl,
    pnl_by_price,
    pnl_by_structure,
    release_pnl,
    top_event_share,
)
from kalshi_lab.compute import aside
from kalshi_lab.execution.factory import build_strategy
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import BacktestParams, Params, load_params
from kalshi_lab.stages.runner import logger, run_stage
from kalshi_lab.stages.workers import workers_started

#: backtest.json, headline key -> key of the run's summary: the return and P(P&L <= 0), what
#: `dvc exp show` lists beside the validation skill (few and short, so that the table fits 120
#: columns); the rest is in backtest_detail.json
HEADLINE = {"return": "total_return", "p_loss": "p_loss"}


def assess(
    result: BacktestResult,
    by_event: pd.DataFrame,
    backtest: BacktestParams,
    markets: pd.DataFrame,
) -> dict[str, object]:
    """The run's summary with its release-bootstrap interval, P(P&L <= 0) and concentration,
    from its P&L by event (:func:`event_pnl`), and its P&L by event structure."""
    pnl = by_event["pnl"].to_numpy()
    by_release = release_pnl(by_event, markets)
    return {
        **result.summary,
        **bootstrap_return(
            by_release, backtest.initial_cash, backtest.bootstrap_samples, backtest.bootstrap_seed
        ),
        "n_events": len(pnl),
        "n_releases": len(by_release),
        "gain_share_top3_events": top_event_share(pnl),
        "by_structure": pnl_by_structure(result.fills, result.positions, markets),
    }


def run_info(params: Params) -> dict[str, str]:
    """What made the numbers: model, target, strategy, executor and data source."""
    return {
        "model": params.model.name,
        "target": params.model.target,
        "strategy": params.strategy.name,
        "executor": params.backtest.executor,
        "data": params.data.source,
    }


def main() -> None:
    params = load_params()
    build_strategy(params.strategy, params.model.target)  # a bad strategy stops before reading
    predictions, test_predictions = read_stage_predictions()
    with contextlib.ExitStack() as stack:
        # the delayed runs (at 10,000 markets, 1.05 s of the 2.3 s of replaying after the
        # imports) on a worker this stage process started, while this one runs the rest
        delayed = (
            stack.enter_context(aside(delayed_rows_of_stage_inputs, params))
            if workers_started() and params.backtest.latency_hours and len(predictions)
            else None
        )
        tables = MarketTables.read(
            params.backtest, predicted_tickers(predictions, test_predictions)
        )
        if predictions.empty:
            _nothing_to_replay(params, test_predictions, tables)
            return
        _replayed(params, predictions, test_predictions, tables, delayed)


def _replayed(
    params: Params,
    predictions: pd.DataFrame,
    test_predictions: pd.DataFrame | None,
    tables: MarketTables,
    delayed: Callable[[], dict[str, dict[str, object]]] | None,
) -> None:
    """The outputs of a replayed validation period; ``delayed``, when given, waits for the
    delayed runs' rows (else they run here)."""
    result = backtest_on(params, predictions, tables)
    by_event = event_pnl(result.positions)
    validation = assess(result, by_event, params.backtest, tables.markets)
    test = None
    if test_predictions is not None and len(test_predictions):
        run = backtest_quietly(params, test_predictions, tables)
        test = assess(run, event_pnl(run.positions), params.backtest, tables.markets)
    headline = {key: validation[source] for key, source in HEADLINE.items()}

    ts = pd.to_datetime(result.equity["ts"], utc=True)
    # DVC's templates read x as a number: days since the first decision, beside the timestamp.
    curve = result.equity.assign(ts=ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    curve.insert(0, "day", (ts - ts.iloc[0]) / pd.Timedelta(days=1))
    curve["drawdown"] = 1.0 - curve["equity"] / curve["equity"].cummax()
    by_price = pnl_by_price(result.fills, result.positions)
    first, last = predictions["as_of"].min(), predictions["as_of"].max()
    title = (
        f"{params.strategy.name}, {params.model.name}, {params.backtest.executor}\n"
        f"validation period: decisions {first:%Y-%m-%d} to {last:%Y-%m-%d}"
    )
    shown = _best_and_worst(by_event)
    events = (
        f"all {len(by_event)} events"
        if len(shown) == len(by_event)
        else f"the best and worst {len(shown) // 2} of {len(by_event)} events"
    )
    with StagedOutputs() as out:
        out.write_csv(paths.EQUITY, curve)
        out.write_csv(paths.PNL_BY_EVENT, by_event)
        out.write_csv(paths.PNL_BY_PRICE, by_price)
        out.write_parquet(paths.BACKTEST_FILLS, result.fills)
        out.write_with(
            paths.EQUITY_FIGURE,
            lambda p: figures.equity_curve(p, result.equity, title, params.backtest.initial_cash),
        )
        out.write_with(
            paths.PNL_BY_EVENT_FIGURE,
            lambda p: figures.pnl_bars(
                p, shown, "event_ticker", f"P&L by event ({events}): {title}", "event"
            ),
        )
        out.write_with(
            paths.PNL_BY_PRICE_FIGURE,
            lambda p: figures.pnl_bars(
                p, by_price, "bucket", f"P&L by price paid: {title}", "price paid, dollars"
            ),
        )
        latency = {"0h": undelayed_row(result)} | (
            delayed() if delayed else delayed_rows(params, predictions, tables)
        )
        detail: dict[str, object] = {
            "run": run_info(params),
            "validation": validation,
            "latency_total_return": latency,
        }
        if test is not None:
            detail["test"] = test
        out.write_json(paths.BACKTEST_REPORT, headline)
        out.write_json(paths.BACKTEST_DETAIL, detail)
    logger.info("backtest: %s", headline)
    logger.info("backtest: total return by latency: %s", _latency_line(latency))
    if test is not None:
        logger.info("backtest, held-out test period: %s", test)


def _latency_line(latency: dict[str, dict[str, object]]) -> str:
    """``0h: +1.20 %; 6h: -0.40 %; 12h: not measurable (reason)``."""
    return "; ".join(
        f"{k}: {row['return']:+.2%}"
        if row["measurable"]
        else f"{k}: not measurable ({row['reason']})"
        for k, row in latency.items()
    )


#: why a run has no validation backtest: the evaluate stage predicted nothing there
SKIPPED_VALIDATION = (
    "the validation period was skipped (reports/evaluation.json says why): no prediction to replay"
)


def _nothing_to_replay(
    params: Params, test_predictions: pd.DataFrame | None, tables: MarketTables
) -> None:
    """The outputs when validation was skipped: no headline (None), the reason, empty curves
    and figures that say so; the test period is still backtested apart when it has
    predictions."""
    logger.warning("backtest: %s", SKIPPED_VALIDATION)
    detail: dict[str, object] = {
        "run": run_info(params),
        "validation": {"skipped": SKIPPED_VALIDATION},
        "latency_total_return": {},
    }
    if test_predictions is not None and len(test_predictions):
        test = backtest_quietly(params, test_predictions, tables)
        detail["test"] = assess(test, event_pnl(test.positions), params.backtest, tables.markets)
    empty = {
        paths.EQUITY: ["day", *EQUITY_COLUMNS, "drawdown"],
        paths.PNL_BY_EVENT: ["event_ticker", "pnl", "n_positions"],
        paths.PNL_BY_PRICE: ["bucket", "pnl", "n_positions", "contracts"],
    }
    with StagedOutputs() as out:
        out.write_json(paths.BACKTEST_REPORT, dict.fromkeys(HEADLINE))
        out.write_json(paths.BACKTEST_DETAIL, detail)
        for path, columns in empty.items():
            out.write_csv(path, pd.DataFrame(columns=columns))
        out.write_parquet(paths.BACKTEST_FILLS, pd.DataFrame(columns=FILL_COLUMNS))
        for path in (paths.EQUITY_FIGURE, paths.PNL_BY_EVENT_FIGURE, paths.PNL_BY_PRICE_FIGURE):
            out.write_with(
                path, lambda p: figures.notice(p, "no validation backtest", SKIPPED_VALIDATION)
            )


def _best_and_worst(by_event: pd.DataFrame, n: int = 10) -> pd.DataFrame:
    """The ``n`` best and ``n`` worst events (all of them when there are few)."""
    if len(by_event) <= 2 * n:
        return by_event
    return pd.concat([by_event.head(n), by_event.tail(n)])


if __name__ == "__main__":
    run_stage("backtest", main)
