"""train: fit the configured model once per walk-forward fold, once for the test period and
once on everything for trading.

The last walk-forward fold is the validation period: its model (fit on the training period)
is ``models/model.joblib``, which evaluate scores on validation and the backtest replays. The
earlier folds' models and the refit on train + validation that scores the test period go to
``models/walk_forward.joblib``, with every period's reason to be skipped (kalshi_lab.guards):
a skipped period has no model (None) and is not scored; the stage fails only when every period
is skipped. ``models/live.joblib`` is fit on every labelled row, test period included: nothing
scores it (the periods above measured the procedure that made it), and kalshi-bot trades it in
paper and live mode, after the last labelled day.
"""

import contextlib
from collections.abc import Callable, Iterator

import joblib
import pandas as pd

from kalshi_lab import paths
from kalshi_lab.compute import aside
from kalshi_lab.features import TARGET_COLUMNS, UNLABELLED_BECAUSE, feature_columns
from kalshi_lab.features.read import read_features
from kalshi_lab.guards import (
    GUARD_COLUMNS,
    constant_model_reason,
    nothing_scorable,
    skip_reason,
)
from kalshi_lab.io import StagedOutputs
from kalshi_lab.models import check_model_params
from kalshi_lab.models.fit import LIVE, LiveFit, TrainingRows, fit_live
from kalshi_lab.params import Params, load_params
from kalshi_lab.split import SPLIT_COLUMNS, Split, periods
from kalshi_lab.stages.runner import logger, run_stage
from kalshi_lab.stages.workers import workers_started


def context_columns(params: Params) -> list[str]:
    """The features table's columns train reads besides the model's inputs: the split's, the
    guards' and the target."""
    return [*SPLIT_COLUMNS, *GUARD_COLUMNS, TARGET_COLUMNS[params.model.target]]


def train_columns(params: Params) -> list[str]:
    """The features table's columns train reads: :func:`context_columns` and the model's
    inputs."""
    return [*context_columns(params), *feature_columns(params.features)]


def log_unlabelled(rows: pd.DataFrame, target_name: str, side: str, consequence: str) -> None:
    """One INFO line: how many of ``rows`` (one side of the split) have no label, and why."""
    unlabelled = rows[TARGET_COLUMNS[target_name]].isna()
    logger.info(
        "%s: %d of %d rows (%d of %d markets) have no %s label, %s: %s",
        side,
        int(unlabelled.sum()),
        len(rows),
        rows.loc[unlabelled, "ticker"].nunique(),
        rows["ticker"].nunique(),
        target_name,
        consequence,
        UNLABELLED_BECAUSE[target_name],
    )


def _describe(split: Split, n_train: int, skipped: str | None) -> dict[str, object]:
    return {
        "n_train": n_train,
        "train_labels_before": split.train_end.isoformat(),
        "scored_from": split.valid_start.isoformat(),
        "scored_until": split.valid_end.isoformat() if split.valid_end is not None else None,
        "skipped": skipped,
    }


def main() -> None:
    params = load_params()
    # as the validate stage does: a bad hyper-parameter is one line naming it, not LightGBM's
    # traceback from the first fit, when the stage is run on its own
    check_model_params(params.model)
    with StagedOutputs() as out, _live_model(params, out) as live:
        features = read_features(context_columns(params))
        target = TARGET_COLUMNS[params.model.target]
        rows = TrainingRows.of(features, params.model.target, params.features)
        labelled = rows.labelled
        found = periods(features, params.split, params.model.target)
        log_unlabelled(
            features[found.validation.train], params.model.target, "train", "not trained on"
        )
        named = found.named()
        models, skipped, described = {}, {}, {}
        for key, what, split in named:
            model, n_train = None, 0
            reason = skip_reason(features, split, params.model.target, params.split)
            if reason is None:
                model, X = rows.fit(params.model, split.train, what)
                n_train = len(X)
                reason = constant_model_reason(model.predict_proba(X)[:, 1])
                del X  # the period's rows, not held while the next period's are copied
            if reason is not None:
                logger.warning("train: %s skipped, not scored: %s", what, reason)
                model = None
            models[key], skipped[key] = model, reason
            described[key] = _describe(split, n_train, reason)
        if all(reason is not None for reason in skipped.values()):
            raise nothing_scorable(features, skipped, params.split)
        if found.test is None:
            logger.warning("train: split.test_size=0 holds out no test period")
        if live is None:
            live_model, _ = rows.fit(params.model, labelled, LIVE)
            out.write_with(paths.MODEL_LIVE, lambda p: joblib.dump(live_model, p))
        else:
            live()  # written by the worker
        folds = [key for key, _, _ in named if key != "test"]
        validation = described[folds[-1]]
        y = features.loc[found.validation.train & labelled, target]
        meta = {
            "model": params.model.name,
            "target": params.model.target,
            "features": feature_columns(params.features),
            "n_train": validation["n_train"],
            "train_positive_rate": float(y.mean()) if len(y) else None,
            "train_labels_before": validation["train_labels_before"],
            "valid_start": validation["scored_from"],
            "valid_end": validation["scored_until"],
            "skipped": validation["skipped"],
            "walk_forward": {key: described[key] for key in folds},
            "test": described.get("test"),
            "live": {
                "n_train": int(labelled.sum()),
                "last_labelled_as_of": features.loc[labelled, "as_of"].max().isoformat(),
            },
        }
        others = {
            "folds": [models[key] for key in folds[:-1]],
            "test": models.get("test"),
            "skipped": skipped,
        }
        out.write_with(paths.MODEL, lambda p: joblib.dump(models[folds[-1]], p))
        out.write_with(paths.MODELS_WALK_FORWARD, lambda p: joblib.dump(others, p))
        out.write_json(paths.MODEL_META, meta)


@contextlib.contextmanager
def _live_model(params: Params, out: StagedOutputs) -> Iterator[Callable[[], None] | None]:
    """The live model's fit on a worker this stage process started (the largest fit, while
    this process fits the periods), writing it where ``out`` stages it: yields the wait for
    it; None when this process fits it (after the periods)."""
    if not workers_started():
        yield None
        return
    task = LiveFit(params.model, params.features, out.path(paths.MODEL_LIVE))
    with aside(fit_live, task) as live:
        yield live


if __name__ == "__main__":
    run_stage("train", main)
