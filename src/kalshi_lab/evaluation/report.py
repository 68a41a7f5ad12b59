"""The scores of one scored block (a period or a walk-forward fold), and the headline metrics.

A block is reported as the model's scores beside every baseline's on the same rows, the Brier
skill against each reference baseline (``baselines.REFERENCES``), and, for a period, the event
bootstrap of the model-minus-baseline Brier score and log loss, on all its rows and on the rows
of each event structure apart (ladder, bracket, binary, other: where an edge comes from).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_lab.data.structure import STRUCTURES
from kalshi_lab.evaluation.baselines import REFERENCES, Baseline
from kalshi_lab.evaluation.bootstrap import event_bootstrap
from kalshi_lab.evaluation.metrics import brier_per_row, log_loss_per_row, score
from kalshi_lab.params import EvaluationParams


@dataclass(frozen=True)
class Scored:
    """Labelled rows of one block: outcomes, the model's and baselines' probabilities, events."""

    y: np.ndarray
    prob: np.ndarray
    baselines: dict[str, Baseline]
    events: np.ndarray
    structure: np.ndarray  # the event's structure per row (kalshi_lab.data.structure)

    def rows(self, mask: np.ndarray) -> Scored:
        """The block's rows where ``mask`` holds."""
        return Scored(
            y=self.y[mask],
            prob=self.prob[mask],
            baselines={n: (p[mask], hard[mask]) for n, (p, hard) in self.baselines.items()},
            events=self.events[mask],
            structure=self.structure[mask],
        )

    @staticmethod
    def pooled(blocks: list[Scored]) -> Scored:
        """The rows of several blocks as one (walk-forward folds scored together)."""
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
            structure=np.concatenate([b.structure for b in blocks]),
        )


def scores(block: Scored, target: str) -> dict[str, object]:
    """Row counts, every score, and the Brier skill ``1 - model / baseline`` per reference."""
    table = {"model": score(block.y, block.prob)}
    table.update({name: score(block.y, p, hard) for name, (p, hard) in block.baselines.items()})
    return {
        "n_rows": int(len(block.y)),
        "n_events": int(len(np.unique(block.events))),
        "positive_rate": float(np.mean(block.y)),
        "scores": table,
        "brier_skill": {
            f"vs_{name}": 1.0 - table["model"]["brier"] / table[name]["brier"]
            for name in REFERENCES[target]
        },
    }


def period_report(block: Scored, target: str, params: EvaluationParams) -> dict[str, object]:
    """:func:`scores` plus the event-bootstrap intervals of model minus each reference, on all
    rows and (``by_structure``) on each structure's rows, in STRUCTURES order."""
    out = _with_intervals(block, target, params)
    out["by_structure"] = {
        s: _with_intervals(block.rows(block.structure == s), target, params)
        for s in STRUCTURES
        if (block.structure == s).any()
    }
    return out


def _with_intervals(block: Scored, target: str, params: EvaluationParams) -> dict[str, object]:
    out = scores(block, target)
    losses = {"brier_diff": brier_per_row, "log_loss_diff": log_loss_per_row}
    out["bootstrap"] = {
        "n_samples": params.bootstrap_samples,
        "seed": params.bootstrap_seed,
        **{
            f"model_minus_{name}": {
                key: event_bootstrap(
                    block.events,
                    loss(block.y, block.prob) - loss(block.y, block.baselines[name][0]),
                    params.bootstrap_samples,
                    params.bootstrap_seed,
                )
                for key, loss in losses.items()
            }
            for name in REFERENCES[target]
        },
    }
    return out


def headline(report: dict, target: str) -> dict[str, float]:
    """The two validation scalars ``dvc exp show`` lists, beside the backtest's two: the Brier
    skill against the strongest reference (the recalibrated market; persistence for
    ``direction``) and ``p_no_skill``, the share of event-bootstrap resamples in which the
    model's Brier score is not below that reference's. The rest is in evaluation.json."""
    strongest = REFERENCES[target][-1]
    diff = report["bootstrap"][f"model_minus_{strongest}"]["brier_diff"]
    return {
        f"skill_vs_{strongest}": report["brier_skill"][f"vs_{strongest}"],
        "p_no_skill": 1.0 - diff["share_below_zero"],
    }
