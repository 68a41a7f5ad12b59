"""``kalshi-lab summary``: reports/summary.md, what a reviewer reads of a run.

From the pipeline's reports (nothing is recomputed). One screen first: against a git ref, the
params and the metrics that changed (``dvc params diff`` / ``dvc metrics diff <ref> --md``);
then the headline of each period (skill against the best baseline with its interval, or why the
period was skipped; what share of its rows was scored) and of each backtest (return with its
interval, P(P&L <= 0), the share of its P&L still unsettled, latency where measurable), and how
the periods are made. Below, in a collapsible section: every scorer of every period, the
walk-forward folds (a skipped one with its reason, never a skill), the split by event structure,
the backtests' detail and the figures. Works for both targets. The CI workflow
(.github/workflows/summary.yml) posts it on a pull request, as CML does.
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
    "persistence": "persistence",
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
    others = [
        f"{_pct(v)} against the {SCORERS[k.removeprefix('vs_')]}"
        for k, v in skill.items()
        if k != "vs_best"
    ]
    lines += [
        "",
        f"Brier skill: **{_pct(skill['vs_best'])} against the best baseline** "
        f"({SCORERS[period['best_baseline']]}), " + ", ".join(others) + ".",
        "",
        _coverage(period),
    ]
    if period.get("recal_worse_than_market"):
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
        for key in (k.removeprefix("model_minus_") for k in boot if k.startswith("model_")):
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
        "By event structure (model minus its best baseline, Brier, 95 % interval over releases):",
        "",
        "| structure | rows | events | Brier model | best baseline | model minus best |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, part in parts.items():
        s = part["scores"]
        diff = part["bootstrap"]["model_minus_best"]["brier_diff"]
        best = f"{s[part['best_baseline']]['brier']:.4f} ({SCORERS[part['best_baseline']]})"
        lines.append(
            f"| {name} | {part['n_rows']:,} | {part['n_events']:,} | {s['model']['brier']:.4f} "
            f"| {best} | {_interval(diff)} |"
        )
    return lines


def _folds(walk_forward: Mapping[str, Any]) -> list[str]:
    lines = [
        "| fold | rows | events | Brier model | best baseline | skill vs best |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, fold in walk_forward.items():
        if fold["skipped"]:
            lines.append(f"| {name.replace('_', ' ')} | skipped: {fold['skipped']} | | | | |")
            continue
        s = fold["scores"]
        best = fold["best_baseline"]
        lines.append(
            f"| {name.replace('_', ' ')} | {fold['n_rows']:,} | {fold['n_events']:,} "
            f"| {s['model']['brier']:.4f} | {s[best]['brier']:.4f} ({SCORERS[best]}) "
            f"| {_pct(fold['brier_skill']['vs_best'])} |"
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
        f"{100 * run['max_drawdown']:.1f} %, fees ${run['fees_paid']:,.2f}"
        + (
            f" ({100 * run['fee_share_of_gross_pnl']:.0f} % of the P&L before fees)."
            if run["fee_share_of_gross_pnl"] is not None
            else f" (the P&L before fees was ${run['gross_pnl']:,.2f})."
        ),
        _unsettled(run),
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


def _unsettled(run: Mapping[str, Any]) -> str:
    """What of the P&L is not real yet: positions open at the end, valued at their last bid."""
    if not run["n_open_positions"]:
        return "Every position was settled or sold by the end."
    return (
        f"{run['n_open_positions']} positions never settled in the data: ${run['unsettled_pnl']:,.2f} "
        f"of the P&L, {100 * run['unsettled_share_of_pnl']:.0f} % of its absolute size, is "
        "their last bid's value, not a settlement."
    )


def _headline_period(name: str, period: Mapping[str, Any] | None) -> str:
    """One line: the period's skill against its best baseline with the interval, or why not."""
    if period is None:
        return f"- **{name}**: none (no rows in it)."
    scored = (
        f"{period['n_rows']:,} of {period['n_window_rows']:,} rows scored "
        f"({100 * period['share_scored']:.0f} %), {period['n_events']:,} events"
    )
    if period["skipped"]:
        return f"- **{name}**: skipped, {period['skipped']} ({scored})."
    diff = period["bootstrap"]["model_minus_best"]["brier_diff"]
    return (
        f"- **{name}**: skill {_pct(period['brier_skill']['vs_best'])} against the best "
        f"baseline ({SCORERS[period['best_baseline']]}); model minus it, Brier "
        f"{_interval(diff)}, P(no skill) {1 - diff['share_below_zero']:.2f} ({scored})."
    )


def _headline_backtest(name: str, run: Mapping[str, Any] | None) -> str:
    if run is None:
        return f"- **{name} backtest**: none."
    if "skipped" in run:
        return f"- **{name} backtest**: none, {run['skipped']}."
    unsettled = (
        f"; {100 * run['unsettled_share_of_pnl']:.0f} % of its P&L unsettled"
        if run["n_open_positions"]
        else ""
    )
    return (
        f"- **{name} backtest**: return {_pct(run['total_return'])} "
        f"[{_pct(run['return_ci_low'])}, {_pct(run['return_ci_high'])}], "
        f"P(P&L <= 0) {run['p_loss']:.2f}, {run['n_trades']} trades{unsettled}."
    )


def _latency(latency: Mapping[str, Any]) -> str:
    return (
        "Return when every decision is acted on later: "
        + ", ".join(
            f"{k}: {_pct(v['return'])}" if v["measurable"] else f"{k}: not measurable"
            for k, v in latency.items()
        )
        + "."
    )


def _dvc(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dvc", *args], capture_output=True, text=True, check=False
    )


def check_ref(ref: str) -> None:
    """A DataError unless ``ref`` names a git commit: a summary against nothing would paste
    DVC's error where the comparison belongs."""
    proc = subprocess.run(
        ["git", "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise DataError(f"--ref {ref!r} is not a git commit, branch or tag of this repository")


def changes(ref: str) -> str:
    """The params and the metrics that changed against ``ref`` (``dvc params diff`` and
    ``dvc metrics diff``, markdown); a DataError if DVC cannot compare."""
    parts = []
    for what in ("params", "metrics"):
        proc = _dvc(what, "diff", ref, "--md")
        if proc.returncode != 0:
            last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
            raise DataError(f"dvc {what} diff {ref} failed: {last}")
        parts.append(proc.stdout.strip() or f"No {what[:-1]} changed against `{ref}`.")
    return "\n\n".join(parts)


def render(evaluation: Mapping[str, Any], backtest: Mapping[str, Any], diff: str | None) -> str:
    """The summary's markdown from the two detail reports (and the changes against a ref):
    the headline and what changed on one screen, the detail in a collapsible section."""
    run = backtest["run"]
    lines = [
        "# kalshi-lab run summary",
        "",
        f"Model **{run['model']}** (target `{run['target']}`), strategy **{run['strategy']}**, "
        f"executor `{run['executor']}`, data `{run['data']}`.",
    ]
    if diff is not None:
        lines += ["", "## What changed", "", diff]
    lines += [
        "",
        "## Headline",
        "",
        _headline_period("Validation", evaluation["validation"]),
        _headline_period("Test (held out: read it once)", evaluation.get("test")),
        _headline_backtest("Validation", backtest["validation"]),
        _headline_backtest("Test", backtest.get("test")),
    ]
    if backtest["latency_total_return"]:
        lines += ["", _latency(backtest["latency_total_return"])]
    lines += [
        "",
        PERIOD_RULE,
        "",
        "<details><summary>Detail: every period, fold and structure, the backtests, the "
        "figures</summary>",
        "",
        "## Validation period (what `dvc exp` compares and tuning uses)",
        "",
        *_scores(evaluation["validation"]),
        "",
        "### Walk-forward folds (expanding window, each event in one period, embargoed)",
        "",
        *_folds(evaluation["walk_forward"]),
        "",
        "### Backtest",
        "",
        *_backtest(backtest["validation"]),
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
    lines += ["", "## Figures", ""]
    lines += [f"- [{name}]({p.relative_to(paths.REPORTS)})" for name, p in FIGURES if p.exists()]
    lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def write_summary(ref: str | None, out: Path = paths.SUMMARY) -> str:
    """Write the summary of the workspace's reports (diffed against ``ref``) to ``out``."""
    if ref:
        check_ref(ref)
    text = render(
        _read(paths.EVALUATION),
        _read(paths.BACKTEST_DETAIL),
        changes(ref) if ref else None,
    )
    out.write_text(text)
    return text
