"""PNG figures beside the plot data: `dvc plots show` needs a CDN for Vega, a PNG does not.

Matplotlib (about 0.3 s to import) is imported by the first figure drawn, not with this
module: the evaluate and backtest stages draw after their work, and a process that imports
their modules without drawing (the fork server that preloads a stage's module for its
workers, a test) does not pay for it.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from types import ModuleType

    from matplotlib.figure import Figure


@functools.cache
def _pyplot() -> ModuleType:
    """``matplotlib.pyplot``, the backend set to Agg (PNG files, no display) once, by the first
    figure drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})
    _pyplot().close(fig)


def notice(path: Path, title: str, text: str) -> None:
    """A figure that says why there is nothing to draw (e.g. the period was skipped), so that
    every declared PNG exists and says so where a reader looks."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2))
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    _save(fig, path)


def roc(path: Path, frames: dict[str, pd.DataFrame], aucs: dict[str, float], title: str) -> None:
    """One ROC curve per labelled frame (fpr, tpr), its AUC in the legend, and the chance line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="chance (AUC 0.5)")
    for label, frame in frames.items():
        ax.plot(frame["fpr"], frame["tpr"], label=f"{label} (AUC {aucs[label]:.3f})")
    ax.set(
        title=title,
        xlabel="false positive rate",
        ylabel="true positive rate",
        xlim=(0, 1),
        ylim=(0, 1),
    )
    ax.legend(loc="lower right")
    _save(fig, path)


def reliability(
    path: Path, frames: dict[str, pd.DataFrame], probs: dict[str, np.ndarray], title: str
) -> None:
    """Observed frequency against mean prediction per equal-count bin (``frames``), with Wilson
    95 % intervals, and beneath, how the predictions (``probs``) spread over [0, 1]: with equal
    counts per bin, that histogram is where the rows are."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(6, 7), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    top.plot(
        [0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated"
    )
    for i, (label, frame) in enumerate(frames.items()):
        errors = [
            frame["fraction_positive"] - frame["lower"],
            frame["upper"] - frame["fraction_positive"],
        ]
        top.errorbar(
            frame["mean_predicted"],
            frame["fraction_positive"],
            yerr=errors,
            marker="o",
            markersize=4,
            capsize=3,
            label=f"{label} ({len(frame)} bins of ~{int(frame['count'].median())} rows)",
        )
        bottom.hist(probs[label], bins=20, range=(0, 1), histtype="step", color=f"C{i}")
    top.set(title=title, ylabel="observed frequency (95 % Wilson)", xlim=(0, 1), ylim=(0, 1))
    top.legend(loc="upper left", fontsize="small")
    bottom.set(xlabel="predicted probability", ylabel="rows (log)", yscale="log")
    _save(fig, path)


def importance(path: Path, frame: pd.DataFrame, title: str, xlabel: str, top: int = 20) -> None:
    """Horizontal bars of the ``top`` most important features, the largest at the top."""
    plt = _pyplot()
    shown = frame.head(top).iloc[::-1]
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(shown) + 1.2))
    ax.barh(shown["feature"], shown["importance"])
    ax.set(title=f"{title} (top {len(shown)} of {len(frame)})", xlabel=xlabel)
    _save(fig, path)


def _broken_at_gaps(ts: pd.Series, values: pd.Series) -> tuple[pd.Series, pd.Series]:
    """``values`` over ``ts`` with a NaN inserted wherever the time to the next point is over
    three times the median step: nothing was marked there, and a line drawn across the gap
    (weeks from the last decision to the last settlement) would show a path that never was."""
    if len(ts) < 3:
        return ts, values
    step = ts.diff()
    gap = np.flatnonzero((step > 3 * step.median()).to_numpy())  # a gap before these points
    if not len(gap):
        return ts, values
    middle = (ts.iloc[gap] - step.iloc[gap] / 2).to_numpy()  # where the line stops
    times = np.insert(ts.to_numpy(), gap, middle)
    return pd.Series(times), pd.Series(np.insert(values.to_numpy(dtype=float), gap, np.nan))


def equity_curve(path: Path, equity: pd.DataFrame, title: str, initial: float) -> None:
    """Equity over time against the starting capital, and the drawdown beneath it; the line
    stops where the marks stop (see :func:`_broken_at_gaps`), points show every mark."""
    plt = _pyplot()
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [3, 1]}
    )
    ts = pd.to_datetime(equity["ts"]).reset_index(drop=True)
    value = equity["equity"].reset_index(drop=True)
    drawdown = -100 * (1 - value / value.cummax())
    line_ts, line = _broken_at_gaps(ts, value)
    top.plot(line_ts, line, label="equity (marked at the bid)")
    top.plot(ts, value, linestyle="none", marker=".", markersize=3, color="C0")
    top.axhline(initial, color="grey", linestyle="--", linewidth=1, label="starting capital")
    top.set(title=title, ylabel="dollars")
    top.legend(loc="best")
    bottom.plot(*_broken_at_gaps(ts, drawdown), color="red")
    bottom.set(xlabel="as-of (UTC)", ylabel="drawdown %")
    fig.autofmt_xdate()
    _save(fig, path)


def pnl_bars(path: Path, frame: pd.DataFrame, label: str, title: str, ylabel: str) -> None:
    """Horizontal bars of ``pnl`` (dollars) per ``label`` row, gains green, losses red, each
    annotated with its number of positions: where a backtest made and lost its money."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, max(2.5, 0.35 * len(frame) + 1)))
    colors = ["tab:green" if v > 0 else "tab:red" for v in frame["pnl"]]
    ax.barh(frame[label].astype(str), frame["pnl"], color=colors)
    ax.axvline(0, color="grey", linewidth=1)
    for y, (value, n) in enumerate(zip(frame["pnl"], frame["n_positions"], strict=True)):
        ax.annotate(f" {n} pos.", (value, y), va="center", fontsize=8)
    ax.invert_yaxis()  # the first row on top
    ax.set(title=title, xlabel="P&L after fees, dollars", ylabel=ylabel)
    _save(fig, path)
