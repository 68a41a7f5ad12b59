"""The scores of one scored block (a period or a walk-forward fold), and the headline metrics.

A block is reported as the model's scores beside every baseline's on the same rows, the Brier
skill against each reference baseline (``baselines.REFERENCES``) and against the best of them,
and, for a period, the release bootstrap of the model-minus-baseline Brier score and log loss,
on all its rows and on the rows of each event structure apart (ladder, bracket, binary, other:
where an edge comes from).

**The best baseline** of a block is the reference with the lowest Brier score on the block's
own rows: the market price or the recalibrated market (persistence, alone, for
``direction``). The recalibrated market is fit on the period's training events; on few events
it can score far worse than the raw price it recalibrates, and a skill against it alone would
then measure the bad fit, not the model. Choosing the better one on the scored rows makes the
bar higher, never lower. A recalibrated market worse than the raw price is flagged
(``recal_worse_than_market``): it is no bar there.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pandas as pd

from kalshi_lab.data.structure import STRUCTURES
from kalshi_lab.evaluation.baselines import REFERENCES, Baseline
from kalshi_lab.evaluation.bootstrap import cluster_bootstrap
from kalshi_lab.evaluation.metrics import brier, brier_per_row, log_loss_per_row, score
from kalshi_lab.params import EvaluationParams

#: the baseline a block's best reference is copied to (:func:`with_best`)
BEST = "best"


@dataclass(frozen=True)
class Scored:
    """Labelled rows of one block: outcomes, the model's and baselines' probabilities, events
    and the release each event resolves on (the bootstrap's unit)."""

    y: np.ndarray
    prob: np.ndarray
    baselines: dict[str, Baseline]
    events: np.ndarray
    clusters: np.ndarray  # the event's release per row (kalshi_lab.resolution)
    structure: np.ndarray  # the event's structure per row (kalshi_lab.data.structure)
    best: str = ""  # which reference baselines[BEST] is (:func:`with_best`); pooled: joined

    def rows(self, mask: np.ndarray) -> Scored:
        """The block's rows where ``mask`` holds."""
        return Scored(
            y=self.y[mask],
            prob=self.prob[mask],
            baselines={n: (p[mask], hard[mask]) for n, (p, hard) in self.baselines.items()},
            events=self.events[mask],
            clusters=self.clusters[mask],
            structure=self.structure[mask],
            best=self.best,
        )

    @staticmethod
    def pooled(blocks: list[Scored]) -> Scored:
        """The rows of several blocks as one (walk-forward folds scored together); each keeps
        its own best baseline."""
        return Scored(
            y=np.concatenate([b.y for b in blocks]),
            prob=np.concatenate([b.prob for b in blocks]),
            baselines={
                name: (
                    np.concatenate([b.baselines[name][0] for b in blocks]),
                    np.concatenate([b.baselines[name][1] for b in blocks]),
                )
                for name in blocks[0].baselines
            },
            events=np.concatenate([b.events for b in blocks]),
            clusters=np.concatenate([b.clusters for b in blocks]),
            structure=np.concatenate([b.structure for b in blocks]),
            best=", ".join(dict.fromkeys(b.best for b in blocks)),
        )


def with_best(block: Scored, target: str) -> Scored:
    """``block`` with baseline BEST: the reference with the lowest Brier score on its rows
    (ties go to the first in ``REFERENCES[target]``, the raw price)."""
    brier = {n: brier_per_row(block.y, block.baselines[n][0]).mean() for n in REFERENCES[target]}
    name = min(brier, key=brier.__getitem__)
    return dataclasses.replace(
        block, baselines={**block.baselines, BEST: block.baselines[name]}, best=name
    )


def _compared(target: str) -> tuple[str, ...]:
    """The baselines a skill and an interval are reported against: each reference, the best."""
    return (*REFERENCES[target], BEST)


def scores(block: Scored, target: str) -> dict[str, object]:
    """Row counts, every score, and the Brier skill ``1 - model / baseline`` against each
    reference and the best of them (:func:`with_best` first)."""
    table = {"model": score(block.y, block.prob)}
    table.update(
        {
            name: score(block.y, p, hard)
            for name, (p, hard) in block.baselines.items()
            if name != BEST
        }
    )
    # of the best reference only the Brier score is reported (the others are its own entry's)
    best_brier = brier(block.y, block.baselines[BEST][0])
    out: dict[str, object] = {
        "n_rows": int(len(block.y)),
        "n_events": int(len(pd.unique(block.events))),
        "positive_rate": float(np.mean(block.y)),
        "scores": table,
        "best_baseline": block.best,
        "brier_skill": {
            **{
                f"vs_{name}": 1.0 - table["model"]["brier"] / table[name]["brier"]
                for name in REFERENCES[target]
            },
            f"vs_{BEST}": 1.0 - table["model"]["brier"] / best_brier,
        },
    }
    if "recal" in table:
        out["recal_worse_than_market"] = table["recal"]["brier"] > table["market"]["brier"]
    return out


def period_report(block: Scored, target: str, params: EvaluationParams) -> dict[str, object]:
    """:func:`scores` plus the release-bootstrap intervals of model minus each reference and
    the best, on all rows and (``by_structure``) on each structure's rows, in STRUCTURES
    order."""
    out = _with_intervals(block, target, params)
    out["by_structure"] = {
        s: _with_intervals(block.rows(block.structure == s), target, params)
        for s in STRUCTURES
        if (block.structure == s).any()
    }
    return out


def period_scores(report: dict[str, object]) -> dict[str, object]:
    """:func:`scores` of the block a :func:`period_report` is of, taken from the report (what
    it adds removed) instead of scored again: validation needs both."""
    return {key: value for key, value in report.items() if key not in ("bootstrap", "by_structure")}


def _with_intervals(block: Scored, target: str, params: EvaluationParams) -> dict[str, object]:
    out = scores(block, target)
    losses = {"brier_diff": brier_per_row, "log_loss_diff": log_loss_per_row}
    diffs = {
        (name, key): loss(block.y, block.prob) - loss(block.y, block.baselines[name][0])
        for name in _compared(target)
        for key, loss in losses.items()
    }
    intervals = cluster_bootstrap(
        block.clusters, diffs, params.bootstrap_samples, params.bootstrap_seed
    )
    out["bootstrap"] = {
        "n_samples": params.bootstrap_samples,
        "seed": params.bootstrap_seed,
        "n_releases": int(len(pd.unique(block.clusters))),
        **{
            f"model_minus_{name}": {key: intervals[name, key] for key in losses}
            for name in _compared(target)
        },
    }
    return out


def headline(report: dict) -> dict[str, float | None]:
    """The two validation scalars ``dvc exp show`` lists, beside the backtest's two: the Brier
    skill against the period's best baseline (:func:`with_best`) and ``p_no_skill``, the share
    of release-bootstrap resamples in which the model's Brier score is not below that
    baseline's. A skipped period (kalshi_lab.guards) has neither: both are None. The rest is in
    evaluation.json."""
    if report.get("skipped"):
        return {f"skill_vs_{BEST}": None, "p_no_skill": None}
    diff = report["bootstrap"][f"model_minus_{BEST}"]["brier_diff"]
    return {
        f"skill_vs_{BEST}": report["brier_skill"][f"vs_{BEST}"],
        "p_no_skill": 1.0 - diff["share_below_zero"],
    }
