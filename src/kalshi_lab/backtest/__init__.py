"""Backtest: replay predictions through the execution layer (:mod:`kalshi_lab.execution`).

``loop`` (run_backtest: a Trader stepped over the predictions' decision times; backtest_pipeline:
the backtest stage's run on the pipeline's outputs) <- ``report`` (BacktestResult). Orders
are decided at a prediction's as_of and filled against the orderbook snapshot at or before their
send time, or, for a market without one (as in recorded history), the latest candle that ended
by then.
"""

from kalshi_lab.backtest.loop import backtest_pipeline, run_backtest
from kalshi_lab.backtest.report import BacktestResult

__all__ = ["BacktestResult", "backtest_pipeline", "run_backtest"]
