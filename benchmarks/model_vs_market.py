"""Each model against the market price and the recalibrated market, with and without an edge.

Run on demand (not a test), after the default pipeline has built the features::

    uv run dvc repro features
    uv run python benchmarks/model_vs_market.py [--variants lightgbm offset ...]
    uv run python benchmarks/model_vs_market.py --select

Every variant is a model config composed from conf/ with Hydra overrides (``VARIANTS``), fit
and scored as the train and evaluate stages do (``fit_model``, ``score_split``) on every period
of the default split: the walk-forward folds before validation, validation, and the test period
(fit on train + validation). Per period it prints the model's Brier score, the market price's
and the recalibrated market's on the same rows, the Brier skill against the better of the two
on that period (the best baseline), and ``p_no_skill``: the share of event-bootstrap resamples
(``evaluation.bootstrap_*``, resampling releases as the evaluate stage does) in which the model's Brier score is not below the best baseline's.

The injected-edge experiment adds ``EDGE = outcome + N(0, EDGE_SD^2)`` (seeded; NaN where the
row has no label) to the features and fits every variant with it: a model that cannot report an
edge this strong as significant would miss a real one. Beside them, ``edge_likelihood`` (and a
quarter of it) adds the edge's exact log-likelihood ratio to the market's log-odds, fitting
nothing: how much there is to find.

``--select`` is how ``conf/model/lightgbm_offset.yaml``'s regularisation was chosen, without
the validation or test rows: each candidate of ``CANDIDATES`` is scored on the walk-forward
folds before validation (pooled), with and without the edge; the choice is the best skill with
the edge among the candidates that do not lose to the best baseline without it.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from common import ROOT
from kalshi_lab import paths
from kalshi_lab.compose_params import compose
from kalshi_lab.evaluation.blocks import score_split
from kalshi_lab.evaluation.bootstrap import cluster_bootstrap
from kalshi_lab.evaluation.metrics import brier_per_row
from kalshi_lab.evaluation.report import Scored
from kalshi_lab.features import TARGET_COLUMNS, feature_columns
from kalshi_lab.models import fit_model
from kalshi_lab.params import Params, params_from_dict
from kalshi_lab.resolution import release_clusters
from kalshi_lab.split import periods

OFFSET = "model=lightgbm_offset"
#: variant -> Hydra overrides of the default config
VARIANTS: dict[str, list[str]] = {
    "anchored": ["model=anchored_logit"],
    "lightgbm": ["model=lightgbm"],
    "logreg": ["model=logreg"],
    "offset": [OFFSET],
    # the strongest shrinkage of CANDIDATES: close to the market whatever the data
    "offset_strong": [OFFSET, "model.params.reg_lambda=10000.0"],
    # the offset model with the plain LightGBM's regularisation (conf/model/lightgbm.yaml)
    "offset_loose": [
        OFFSET,
        "model.params.num_leaves=15",
        "model.params.min_child_samples=100",
        "model.params.extra_trees=false",
        "model.params.reg_lambda=1.0",
        "model.params.learning_rate=0.03",
    ],
}
#: --select: the offset model's regularisation candidates, overrides of conf/model/lightgbm_offset
CANDIDATES: list[list[str]] = [
    [
        OFFSET,
        f"model.params.num_leaves={leaves}",
        f"model.params.reg_lambda={reg}",
        f"model.params.extra_trees={extra}",
    ]
    for leaves in (2, 4)
    for reg in (300.0, 1000.0, 3000.0, 10000.0)
    for extra in ("false", "true")
]
VALIDATION = "validation"
EDGE = "EDGE"
EDGE_SD = 2.0
EDGE_SEED = 14


@dataclass(frozen=True)
class Row:
    """One variant on one period: Brier scores on the same rows, skill and its p-value."""

    variant: str
    edge: bool
    period: str
    n_rows: int
    n_events: int
    model: float
    market: float
    recal: float
    skill: float  # 1 - model / best baseline
    p_no_skill: float


def with_edge(features: pd.DataFrame, target: str) -> pd.DataFrame:
    """``features`` plus ``EDGE``: the outcome plus seeded Gaussian noise, NaN where unlabelled."""
    outcome = features[TARGET_COLUMNS[target]].to_numpy(dtype=float)
    noise = np.random.default_rng(EDGE_SEED).normal(0.0, EDGE_SD, len(features))
    return features.assign(**{EDGE: outcome + noise})


def config(overrides: list[str]) -> Params:
    return params_from_dict(compose(overrides, ROOT / "conf"))


def measure(block: Scored, params: Params) -> dict[str, float]:
    """Brier scores of the model and both market baselines, and the event bootstrap of the
    model against the better baseline on this block."""
    brier = {"model": float(brier_per_row(block.y, block.prob).mean())}
    for name in ("market", "recal"):
        brier[name] = float(brier_per_row(block.y, block.baselines[name][0]).mean())
    best = min(("market", "recal"), key=brier.__getitem__)
    diff = brier_per_row(block.y, block.prob) - brier_per_row(block.y, block.baselines[best][0])
    ev = params.evaluation
    boot = cluster_bootstrap(block.clusters, {best: diff}, ev.bootstrap_samples, ev.bootstrap_seed)[
        best
    ]
    return brier | {
        "skill": 1.0 - brier["model"] / brier[best],
        "p_no_skill": 1.0 - boot["share_below_zero"],
    }


class EdgeLikelihood:
    """Not a model: the market's log-odds plus ``share`` of the log-likelihood ratio that
    ``EDGE`` carries, ``(EDGE - 1/2) / EDGE_SD^2``; what an edge-finding model could reach."""

    def __init__(self, share: float) -> None:
        self.share = share

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        ratio = (X[EDGE].to_numpy() - 0.5) / EDGE_SD**2
        yes = 1.0 / (1.0 + np.exp(-(X["LOGIT_MID"].to_numpy() + self.share * ratio)))
        return np.column_stack([1.0 - yes, yes])


def scored_periods(
    overrides: list[str], features: pd.DataFrame, edge: bool, fixed: object | None = None
) -> tuple[Params, list[tuple[str, Scored]]]:
    """The config of ``overrides`` fit and scored on every period, each with its own training
    rows, with ``EDGE`` among its inputs if ``edge``; ``fixed`` is scored instead of a fit."""
    params = config(overrides)
    target = params.model.target
    labels = TARGET_COLUMNS[target]
    columns = feature_columns(params.features) + ([EDGE] if edge else [])
    found = periods(features, params.split, target)
    labelled = features[labels].notna().to_numpy()
    named = [
        (name if name in (VALIDATION, "test") else f"fold {key[5:]}", split)
        for key, name, split in found.named()
    ]
    blocks = []
    clusters = release_clusters(features)
    for period, split in named:
        train = features[split.train & labelled]
        if train["event_ticker"].nunique() < params.split.min_train_events or not split.valid.any():
            continue  # the pipeline skips it too (kalshi_lab.guards)
        y = train[labels].to_numpy(dtype=int)
        groups = train["event_ticker"].to_numpy()
        model = (
            fit_model(params.model, train[columns], y, groups, period) if fixed is None else fixed
        )
        rows, releases = features[split.valid], clusters[split.valid]
        block, _ = score_split(train, rows, model, target, columns, period, releases)
        blocks.append((period, block))
    return params, blocks


def run_variant(
    name: str, features: pd.DataFrame, edge: bool, fixed: object | None = None
) -> list[Row]:
    """One row per period for variant ``name`` (or ``fixed``, scored under that name)."""
    params, blocks = scored_periods(VARIANTS.get(name, []), features, edge, fixed)
    return [
        Row(name, edge, period, len(block.y), len(set(block.events)), **measure(block, params))
        for period, block in blocks
    ]


def select(features: pd.DataFrame) -> pd.DataFrame:
    """Every candidate on the walk-forward folds before validation, pooled, with and without
    the edge; the chosen one marked. Only those folds are scored: their rows and labels all
    precede the validation period."""
    target = config([OFFSET]).model.target
    edged = with_edge(features, target)
    records = []
    for overrides in CANDIDATES:
        record = {"candidate": " ".join(o.removeprefix("model.params.") for o in overrides[1:])}
        for frame, suffix in ((features, ""), (edged, "_edge")):
            params, blocks = scored_periods(overrides, frame, edge=bool(suffix))
            early = Scored.pooled([b for period, b in blocks if period.startswith("fold")])
            scores = measure(early, params)
            record |= {
                f"skill{suffix}": scores["skill"],
                f"p_no_skill{suffix}": scores["p_no_skill"],
            }
        records.append(record)
    table = pd.DataFrame(records)
    fair = table[table["skill"] >= 0]
    table["chosen"] = table.index == (fair["skill_edge"].idxmax() if len(fair) else -1)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--no-edge", action="store_true", help="skip the injected-edge runs")
    parser.add_argument("--select", action="store_true", help="cross-validate CANDIDATES only")
    args = parser.parse_args()
    features = pd.read_parquet(paths.FEATURES)
    if args.select:
        table = select(features)
    else:
        target = config([]).model.target
        runs = [(features, False)] + ([] if args.no_edge else [(with_edge(features, target), True)])
        rows = [
            row
            for frame, edge in runs
            for name in args.variants
            for row in run_variant(name, frame, edge)
        ]
        if not args.no_edge:
            for share, name in ((1.0, "edge_likelihood"), (0.25, "edge_likelihood/4")):
                rows += run_variant(name, runs[1][0], True, EdgeLikelihood(share))
        table = pd.DataFrame([asdict(row) for row in rows])
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
