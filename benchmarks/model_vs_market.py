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
(``evaluation.bootstrap_*``) in which the model's Brier score is not below the best baseline's.

The injected-edge experiment adds ``EDGE = outcome + N(0, EDGE_SD^2)`` (seeded; NaN where the
row has no label) to the features and fits every variant with it: a model that cannot report an
edge this strong as significant would miss a real one.

``--select`` is how ``conf/model/lightgbm_offset.yaml`` was chosen, without the validation or
test rows: each candidate of ``CANDIDATES`` is scored by 5-fold cross-validation grouped by
event on the validation period's training rows (the recalibrated market refit in each fold),
with and without the edge; the choice is the best skill with the edge among the candidates
that do not lose to the best baseline without it.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold

from common import ROOT
from kalshi_lab import paths
from kalshi_lab.compose_params import compose
from kalshi_lab.evaluation.baselines import market, recalibrated_market
from kalshi_lab.evaluation.blocks import score_split
from kalshi_lab.evaluation.bootstrap import event_bootstrap
from kalshi_lab.evaluation.metrics import brier_per_row
from kalshi_lab.evaluation.report import Scored
from kalshi_lab.features import TARGET_COLUMNS, feature_columns
from kalshi_lab.models import fit_model
from kalshi_lab.params import Params, params_from_dict
from kalshi_lab.split import periods

OFFSET = "model=lightgbm_offset"
#: variant -> Hydra overrides of the default config
VARIANTS: dict[str, list[str]] = {
    "lightgbm": ["model=lightgbm"],
    "logreg": ["model=logreg"],
    "offset": [OFFSET],
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
    for reg in (300.0, 1000.0, 3000.0)
    for extra in ("false", "true")
]
CV_FOLDS = 5
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
    boot = event_bootstrap(block.events, diff, ev.bootstrap_samples, ev.bootstrap_seed)
    return brier | {
        "skill": 1.0 - brier["model"] / brier[best],
        "p_no_skill": 1.0 - boot["share_below_zero"],
    }


def run_variant(name: str, features: pd.DataFrame, edge: bool) -> list[Row]:
    """``name`` fit and scored on every period, with ``EDGE`` among its inputs if ``edge``."""
    params = config(VARIANTS[name])
    target = params.model.target
    labels = TARGET_COLUMNS[target]
    columns = feature_columns(params.features) + ([EDGE] if edge else [])
    found = periods(features, params.split, target)
    labelled = features[labels].notna().to_numpy()
    named = [(f"fold {k}", s) for k, s in zip(found.numbers[:-1], found.folds[:-1], strict=True)]
    named += [("validation", found.validation)] + ([("test", found.test)] if found.test else [])
    rows = []
    for period, split in named:
        train = features[split.train & labelled]
        model = fit_model(params.model, train, train[labels].to_numpy(dtype=int), columns, period)
        block, _ = score_split(features, split, model, target, columns, period)
        scores = measure(block, params)
        rows.append(Row(name, edge, period, len(block.y), len(set(block.events)), **scores))
    return rows


def cross_validated(overrides: list[str], rows: pd.DataFrame, edge: bool) -> dict[str, float]:
    """``overrides``' model scored out of fold on ``rows`` (labelled, priced), folds grouped by
    event, beside the market and the recalibrated market refit on each fold's training part."""
    params = config(overrides)
    labels = TARGET_COLUMNS[params.model.target]
    columns = feature_columns(params.features) + ([EDGE] if edge else [])
    y = rows[labels].to_numpy(dtype=int)
    events = rows["event_ticker"].astype(str).to_numpy()
    prob, recal = np.empty(len(rows)), np.empty(len(rows))
    for fit_on, held in GroupKFold(CV_FOLDS).split(rows, y, events):
        train, scored = rows.iloc[fit_on], rows.iloc[held]
        model = fit_model(params.model, train, y[fit_on], columns, "a cross-validation fold")
        prob[held] = model.predict_proba(scored[columns])[:, 1]
        recal[held] = recalibrated_market(train, y[fit_on], scored)[0]
    baselines = {"market": market(rows), "recal": (recal, (recal > 0.5).astype(int))}
    structure = rows["structure"].astype(str).to_numpy()
    return measure(Scored(y, prob, baselines, events, structure), params)


def select(features: pd.DataFrame) -> pd.DataFrame:
    """Every candidate cross-validated on the validation period's training rows, with and
    without the edge; the chosen one marked."""
    params = config([OFFSET])
    labels = TARGET_COLUMNS[params.model.target]
    split = periods(features, params.split, params.model.target).validation
    usable = split.train & features[labels].notna().to_numpy()
    usable &= features["market_prob"].notna().to_numpy()
    rows = with_edge(features, params.model.target)[usable].reset_index(drop=True)
    records = []
    for overrides in CANDIDATES:
        plain, edged = (cross_validated(overrides, rows, edge) for edge in (False, True))
        records.append(
            {
                "candidate": " ".join(o.removeprefix("model.params.") for o in overrides[1:]),
                "skill": plain["skill"],
                "p_no_skill": plain["p_no_skill"],
                "skill_edge": edged["skill"],
                "p_no_skill_edge": edged["p_no_skill"],
            }
        )
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
        table = pd.DataFrame(
            [
                asdict(row)
                for frame, edge in runs
                for name in args.variants
                for row in run_variant(name, frame, edge)
            ]
        )
    with pd.option_context("display.width", 200, "display.max_rows", 500):
        print(table.round(4).to_string(index=False))


if __name__ == "__main__":
    main()
