"""backtest: replay the validation period through strategy -> executor -> exchange -> account."""

import pandas as pd

from kalshi_lab import figures, paths
from kalshi_lab.backtest import backtest_pipeline
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import load_params
from kalshi_lab.stages.runner import logger, run_stage


def main() -> None:
    params = load_params()
    _, result = backtest_pipeline(params)
    ts = pd.to_datetime(result.equity["ts"], utc=True)
    # DVC's templates read x as a number: days since the first decision, beside the timestamp.
    curve = result.equity.assign(ts=ts.dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    curve.insert(0, "day", (ts - ts.iloc[0]) / pd.Timedelta(days=1))
    curve["drawdown"] = 1.0 - curve["equity"] / curve["equity"].cummax()
    with StagedOutputs() as out:
        out.write_json(paths.BACKTEST_REPORT, result.summary)
        out.write_csv(paths.EQUITY, curve)
        out.write_parquet(paths.BACKTEST_FILLS, result.fills)
        out.write_with(
            paths.EQUITY_FIGURE,
            lambda p: figures.equity_curve(
                p,
                result.equity,
                f"{params.strategy.name}, {params.model.name}, {params.backtest.executor}",
                params.backtest.initial_cash,
            ),
        )
    logger.info("backtest: %s", result.summary)


if __name__ == "__main__":
    run_stage("backtest", main)
