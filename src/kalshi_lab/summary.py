"""``kalshi-lab summary``: reports/summary.md, what a reviewer reads of a run.

From the pipeline's reports (nothing is recomputed): how the periods are made; the model beside
the market, the recalibrated market and the better of the two with release-bootstrap
intervals, what each period scored, per walk-forward fold (a skipped one with its reason, never
a skill), per event structure and on the held-out test period; the backtest (with its P&L per
event structure) with its interval, P(P&L <= 0), concentration and latency; the metrics that
changed against a git ref (``dvc metrics diff <ref> --md``); links to the figures. The CI
workflow (.github/workflows/summary.yml) posts it on a pull request, as CML does.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kalshi_lab import paths
from kalshi_lab.errors import DataError

SCORERS = {
    "model": "model",
    "market": "market price",
    "recal": "recalibrated market",
    "base_rate": "base rate",
    "best": "best baseline",
}
#: how the periods are made, stated where their figures are read (README, "Three periods")
PERIOD_RULE = (
    "Each event is scored in one period only, the one whose window holds its resolution (its "
    "last settlement); its rows in an earlier window are purged, not scored. A period with too "
    "few events, one class or a constant model is skipped and left out of pooled figures. "
    "Skill is against the better, per period, of the market price and the recalibrated market; "
    "intervals resample releases (a series family's events closing on one date)."
)
FIGURES = (
    ("ROC", paths.ROC_FIGURE),
    ("reliability", paths.CALIBRATION_FIGURE),
    ("feature importance", paths.IMPORTANCE_FIGURE),
    ("equity and drawdown", paths.EQUITY_FIGURE),
    ("P&L by event", paths.PNL_BY_EVENT_FIGURE),
    ("P&L by price paid", paths.PNL_BY_PRICE_FIGURE),
)


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise DataError(f"{path} does not exist: run `dvc repro` first")
    return json.loads(path.read_text())


def _pct(x: float) -> str:
    return f"{100 * x:+.1f} %"


def _interval(block: Mapping[str, float]) -> str:
    return f"{block['estimate']:+.4f} [{block['lower']:+.4f}, {block['upper']:+.4f}]"


def _coverage(period: Mapping[str, Any]) -> str:
    """What of the period's window was scored, and why the rest was not."""
    rest = "; ".join(f"{n:,} {why}" for why, n in period["not_scored"].items())
    return (
        f"Scored {period['n_rows']:,} of the {period['n_window_rows']:,} rows in its window "
        f"({100 * period['share_scored']:.0f} %), {period['n_events']:,} events; "
        f"trained on {period['n_train_events']:,} events."
        + (f" Not scored: {rest}." if rest else "")
    )


def _scores(period: Mapping[str, Any]) -> list[str]:
    """The scorers' table of one period, and the model-minus-baseline intervals under it; a
    skipped period's reason instead."""
    if period["skipped"]:
        return [f"**Skipped, not scored**: {period['skipped']}.", "", _coverage(period)]
    lines = ["| | Brier | log loss | AUC |", "|---|---:|---:|---:|"]
    for key, name in SCORERS.items():
        s = period["scores"].get(key)
        if s is not None:
            lines.append(
                f"| {name} | {s['brier']:.4f} | {s['log_loss']:.4f} | {s['roc_auc']:.3f} |"
            )
    skill = period["brier_skill"]
    lines += [
        "",
        f"Brier skill: **{_pct(skill['vs_best'])} against the best baseline** "
        f"({SCORERS[period['best_baseline']]}), {_pct(skill['vs_market'])} against the market "
        f"price, {_pct(skill['vs_recal'])} against the recalibrated market.",
        "",
        _coverage(period),
    ]
    if period["recal_worse_than_market"]:
        lines += [
            "",
            "The recalibrated market scores worse than the raw price here (fit on "
            f"{period['n_train_events']:,} training events): it is no bar.",
        ]
    boot = period.get("bootstrap")
    if boot:
        lines += [
            "",
            f"Model minus baseline, 95 % interval over {boot['n_releases']:,} releases "
            f"({boot['n_samples']:,} resamples; below 0: the model is better):",
            "",
            "| against | Brier difference | log-loss difference |",
            "|---|---:|---:|",
        ]
        for key in ("market", "recal", "best"):
            diff = boot[f"model_minus_{key}"]
            lines.append(
                f"| {SCORERS[key]} | {_interval(diff['brier_diff'])} "
                f"| {_interval(diff['log_loss_diff'])} |"
            )
    return [*lines, "", *_by_structure(period.get("by_structure", {}))]


def _by_structure(parts: Mapping[str, Any]) -> list[str]:
    """One row per event structure: where the model's edge (or lack of it) comes from."""
    if not parts:
        return []
    lines = [
        "By event structure (model minus market price, Brier, 95 % interval over releases):",
        "",
        "| structure | rows | events | Brier model | market | recalibrated | model minus market |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, part in parts.items():
        s = part["scores"]
        diff = part["bootstrap"]["model_minus_market"]["brier_diff"]
        lines.append(
            f"| {name} | {part['n_rows']:,} | {part['n_events']:,} | {s['model']['brier']:.4f} "
            f"| {s['market']['brier']:.4f} | {s['recal']['brier']:.4f} | {_interval(diff)} |"
        )
    return lines


def _folds(walk_forward: Mapping[str, Any]) -> list[str]:
    lines = [
        "| fold | rows | events | Brier model | market | recalibrated | skill vs best |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, fold in walk_forward.items():
        if fold["skipped"]:
            lines.append(f"| {name.replace('_', ' ')} | skipped: {fold['skipped']} | | | | | |")
            continue
        s = fold["scores"]
        lines.append(
            f"| {name.replace('_', ' ')} | {fold['n_rows']:,} | {fold['n_events']:,} "
            f"| {s['model']['brier']:.4f} | {s['market']['brier']:.4f} "
            f"| {s['recal']['brier']:.4f} | {_pct(fold['brier_skill']['vs_best'])} |"
        )
    return lines


def _backtest(run: Mapping[str, Any]) -> list[str]:
    if "skipped" in run:
        return [f"No backtest: {run['skipped']}."]
    lines = [
        f"Return {_pct(run['total_return'])}, 95 % interval over releases "
        f"[{_pct(run['return_ci_low'])}, {_pct(run['return_ci_high'])}]; "
        f"P(P&L <= 0) = {run['p_loss']:.2f}.",
        f"{run['n_trades']} trades in {run['n_events']} events; the best 3 events made "
        f"{100 * run['gain_share_top3_events']:.0f} % of the gains. Max drawdown "
        f"{100 * run['max_drawdown']:.1f} %, fees ${run['fees_paid']:,.2f} "
        f"({100 * run['fee_share_of_gross_pnl']:.0f} % of the P&L before fees).",
    ]
    parts = run.get("by_structure") or {}
    if parts:
        lines += [
            "",
            "| structure | events | positions | contracts | fees | P&L |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        lines += [
            f"| {name} | {p['n_events']} | {p['n_positions']} | {p['contracts']:,} "
            f"| ${p['fees_paid']:,.2f} | ${p['pnl']:,.2f} |"
            for name, p in parts.items()
        ]
    return lines


def metrics_diff(ref: str) -> str:
    """``dvc metrics diff <ref> --md``; a failure is reported in the text, not raised."""
    cmd = [sys.executable, "-m", "dvc", "metrics", "diff", ref, "--md"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        return f"`dvc metrics diff {ref}` failed: {proc.stderr.strip().splitlines()[-1:]}"
    return proc.stdout.strip() or f"No metric changed against `{ref}`."


def render(evaluation: Mapping[str, Any], backtest: Mapping[str, Any], diff: str | None) -> str:
    """The summary's markdown from the two detail reports (and a metrics diff, if any)."""
    run = backtest["run"]
    lines = [
        "# kalshi-lab run summary",
        "",
        f"Model **{run['model']}** (target `{run['target']}`), strategy **{run['strategy']}**, "
        f"executor `{run['executor']}`, data `{run['data']}`.",
        "",
        PERIOD_RULE,
        "",
        "## Validation period (what `dvc exp` compares and tuning uses)",
        "",
        *_scores(evaluation["validation"]),
        "",
        "### Walk-forward folds (expanding window, event-grouped, embargoed)",
        "",
        *_folds(evaluation["walk_forward"]),
        "",
        "### Backtest",
        "",
        *_backtest(backtest["validation"]),
    ]
    if backtest["latency_total_return"]:
        lines += [
            "",
            "Total return when every decision is acted on later: "
            + ", ".join(
                f"{k}: {_pct(v['return'])}" if v["measurable"] else f"{k}: not measurable"
                for k, v in backtest["latency_total_return"].items()
            )
            + ".",
        ]
    if evaluation.get("test"):
        lines += [
            "",
            "## Held-out test period (nothing is tuned on it: read it once)",
            "",
            *_scores(evaluation["test"]),
        ]
        if "test" in backtest:
            lines += ["", "### Backtest", "", *_backtest(backtest["test"])]
    if diff is not None:
        lines += ["", "## Metrics changed", "", diff]
    lines += ["", "## Figures", ""]
    lines += [f"- [{name}]({p.relative_to(paths.REPORTS)})" for name, p in FIGURES if p.exists()]
    return "\n".join(lines) + "\n"


def write_summary(ref: str | None, out: Path = paths.SUMMARY) -> str:
    """Write the summary of the workspace's reports (diffed against ``ref``) to ``out``."""
    text = render(
        _read(paths.EVALUATION),
        _read(paths.BACKTEST_DETAIL),
        metrics_diff(ref) if ref else None,
    )
    out.write_text(text)
    return text
