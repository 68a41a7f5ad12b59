"""Backtest: replay predictions through the execution layer (:mod:`kalshi_lab.execution`).

``loop`` (run_backtest: a Trader stepped over the predictions' decision times; backtest_pipeline:
the backtest stage's run on the pipeline's outputs) <- ``report`` (BacktestResult);
``latency`` (whether a run acted on later found fresher quotes). Orders are decided at a
prediction's as_of and filled against the fresher of the orderbook snapshot at or before their
send time and the latest candle that ended by then (recorded history has candles only), if at
most ``backtest.max_quote_age_hours`` old.
"""

from kalshi_lab.backtest.loop import backtest_pipeline, run_backtest
from kalshi_lab.backtest.report import BacktestResult

__all__ = ["BacktestResult", "backtest_pipeline", "run_backtest"]
