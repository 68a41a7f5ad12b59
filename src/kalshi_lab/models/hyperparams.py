"""Check ``model.params`` against what the chosen estimator accepts, before any stage fits.

LightGBM and scikit-learn check their hyper-parameters only when they fit: a bad value found
by the train stage costs the user the outputs DVC deleted before running it, and arrives as
a library traceback (LightGBM's C++ parser says ``Unknown token abc in data file`` for a
``learning_rate`` of ``abc``). The validate stage calls :func:`check_model_params` instead,
which asks the libraries themselves, in this order:

1. the names: the estimator's own (``get_params``, plus :data:`registry.LIGHTGBM_EXTRA`),
   less those the registry sets (the seed, LightGBM's repeatability settings);
2. the types the estimator's signature declares, where it annotates them (LGBMClassifier,
   MarketAnchoredLogit), strictly as params.py checks every section: ``'15'`` is not an int;
3. a fit of one round on a few rows of the estimator the train stage builds, fitted as it
   fits it (``build_model``, ``fit_estimator``): LightGBM's config parser checks every value
   and range, scikit-learn's estimators their ``_parameter_constraints`` and the rules between
   parameters. When that fit fails, fits without each key in turn, then with each key alone,
   find the one at fault.

Each failure is one :class:`ParamError` naming the key, e.g. ``model.params.num_leaves: -3 is
refused by lightgbm (LightGBM: num_leaves must be > 1)``. A valid ``model.params`` costs one
fit of a few milliseconds (tens on a loaded machine); only a refused one costs more.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import inspect
import io
import os
import re
import sys
import typing
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
from pydantic import ConfigDict, TypeAdapter, ValidationError
from sklearn.utils._param_validation import InvalidParameterError

from kalshi_lab.errors import ParamError
from kalshi_lab.models.fit import fit_estimator
from kalshi_lab.models.offset import OFFSET_FEATURE
from kalshi_lab.models.registry import (
    SET_BY_BUILDER,
    build_model,
    estimator_class,
    settable_params,
)
from kalshi_lab.params import ModelParams

#: types as params.py checks them: YAML's ``true`` is not a count, ``"0.5"`` not a fraction;
#: a class in an annotation (numpy's RandomState) is checked with isinstance
STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True)
#: rows of the check's fit: enough that a small share of them (LightGBM's bagging of
#: subsample=0.001, HistGradientBoosting's early-stopping hold-out of validation_fraction=0.001)
#: still holds rows of both classes, as it would on the thousands of rows the train stage fits;
#: on one thread, one round on them takes about 10 ms
N_ROWS = 2000
ROWS_PER_EVENT = 20
#: the parameter that counts each estimator's rounds (boosting) or iterations (solver): the
#: check fits one, since any count from 1 to int32's largest is as valid as another and only
#: takes longer (300 LightGBM rounds on two cores cost 50 ms to 300 ms, one round 2 ms)
ROUNDS = {
    "lightgbm": "n_estimators",
    "lightgbm_offset": "n_estimators",
    "hist_gb": "max_iter",
    "logreg": "max_iter",
}
INT32_MAX = 2**31 - 1
#: LightGBM's config checks, as its C++ parser words them, made readable
_LIGHTGBM_MESSAGES = [
    (re.compile(r"Check failed: \((\w+)\) (\S+) \(([^()]+)\) at .*"), r"\1 must be \2 \3"),
    (re.compile(r"(Check failed: .*) at \S+, line \d+"), r"\1"),
    (re.compile(r"Unknown token (.+) in data file"), r"\1 is not a number"),
]
#: who gave a reason, by the estimator's package
_LIBRARIES = {"lightgbm": "LightGBM", "sklearn": "scikit-learn"}


def _rows() -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Training rows shaped as the features stage writes them: the market's log-odds, another
    feature, the event of each row (for models that count evidence in events), both classes."""
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {
            OFFSET_FEATURE: rng.normal(0.0, 1.5, N_ROWS),
            "FEATURE": rng.normal(0.0, 1.0, N_ROWS),
            "event_ticker": [f"EVENT-{i // ROWS_PER_EVENT}" for i in range(N_ROWS)],
        }
    )
    return rows, np.arange(N_ROWS) % 2, [OFFSET_FEATURE, "FEATURE"]


def _is_lightgbm_error(exc: Exception) -> bool:
    """Whether LightGBM raised ``exc``: read from ``sys.modules``, not imported, so that checking
    a model without LightGBM (the default) does not import it. Only a LightGBM model imports
    LightGBM, and no other code can raise its error."""
    basic = sys.modules.get("lightgbm.basic")
    return basic is not None and isinstance(exc, basic.LightGBMError)


def _library_message(exc: Exception, estimator: type) -> str:
    """The library's reason, on one line, prefixed with the library that gave it."""
    text = " ".join(str(exc).split())
    if _is_lightgbm_error(exc):
        for pattern, readable in _LIGHTGBM_MESSAGES:
            text = pattern.sub(readable, text)
        return f"LightGBM: {text.rstrip(' .')}"
    if isinstance(exc, InvalidParameterError):
        return f"scikit-learn: {text}"
    package = estimator.__module__.split(".")[0]
    return f"{_LIBRARIES.get(package, estimator.__name__)}: {text}"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Nothing the fit prints or warns reaches the user: the warnings are about rows this few,
    and LightGBM's C++ code writes each fatal error to the process's stderr (file descriptor
    2, past ``sys.stderr``) before raising it, which the check reports as its own one line."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _one_round(model: ModelParams) -> ModelParams:
    """``model`` with one round (:data:`ROUNDS`), unless its count is one the estimator may
    refuse (not a positive int32), which is left for the fit to judge."""
    key = ROUNDS.get(model.name)
    if key is None:
        return model
    count = model.params.get(key, 1)
    valid = isinstance(count, int) and not isinstance(count, bool) and 1 <= count <= INT32_MAX
    return _with(model, model.params | {key: 1}) if valid else model


def _fit_failure(model: ModelParams) -> str | None:
    """Why the estimator refuses ``model`` when it fits a few rows as the train stage fits (in
    one round), then scores them; None when it does not."""
    model = _one_round(model)
    rows, y, columns = _rows()
    try:
        with _quiet():
            estimator = build_model(model)
            if "n_jobs" in estimator.get_params():
                # one thread: LightGBM's two (the registry's n_jobs) wait on each other at
                # every step when another process holds a core, 50 times slower on these rows
                estimator.set_params(n_jobs=1)
            X = rows[columns]
            fit_estimator(estimator, X, y, rows["event_ticker"].to_numpy()).predict_proba(X)
    except Exception as exc:
        if not isinstance(exc, (ValueError, TypeError)) and not _is_lightgbm_error(exc):
            raise
        return _library_message(exc, estimator_class(model.name))
    return None


def _with(model: ModelParams, params: dict[str, Any]) -> ModelParams:
    return dataclasses.replace(model, params=params)


def _check_names(model: ModelParams) -> None:
    """Every key is one the estimator takes and the registry leaves to the config; a
    misspelt one is named with the nearest it takes (LightGBM would ignore it quietly)."""
    for key in sorted(model.params):
        if key in SET_BY_BUILDER[model.name]:
            raise ParamError(
                f"model.params.{key}: is set by kalshi_lab.models.registry for {model.name}"
                " (the seed is model.seed), not by model.params"
            )
    settable = settable_params(model.name)
    unknown = sorted(set(model.params) - settable)
    if unknown:
        by_lower = {name.lower(): name for name in sorted(settable)}  # `c` for logreg's `C`
        near = difflib.get_close_matches(unknown[0].lower(), list(by_lower), n=1)
        message = f"model.params.{unknown[0]}: {model.name} takes no such parameter"
        message += (
            f" (did you mean {by_lower[near[0]]}?)" if near else f" (it takes {sorted(settable)})"
        )
        if len(unknown) > 1:
            message += f" (and {len(unknown) - 1} more: {unknown[1:]})"
        raise ParamError(message)


def _check_types(model: ModelParams) -> None:
    """The types the estimator's ``__init__`` annotates, for the keys it annotates."""
    estimator = estimator_class(model.name)
    hints = typing.get_type_hints(estimator.__init__)
    for key, value in model.params.items():
        if key not in hints:  # LightGBM's extra_trees: its own parser judges it
            continue
        try:
            TypeAdapter(hints[key], config=STRICT).validate_python(value)
        except ValidationError as exc:
            reason = exc.errors(include_url=False)[0]["msg"]
            raise ParamError(
                f"model.params.{key}: {value!r} is refused by {model.name} "
                f"({estimator.__name__} takes {key}: {inspect.formatannotation(hints[key])};"
                f" {reason})"
            ) from None


def check_model_params(model: ModelParams) -> None:
    """Raise a ParamError naming the first key of ``model.params`` the estimator refuses.

    When the fit of every key together fails, the key at fault is the one without which it
    succeeds (a value that is fine only with others, LightGBM's ``boosting_type: rf`` with
    bagging, is not blamed for another's fault); failing that (two bad keys), the first that
    fails on its own; failing that, the combination.
    """
    _check_names(model)
    _check_types(model)
    failure = _fit_failure(model)
    if failure is None:
        return
    for key, value in model.params.items():
        rest = {k: v for k, v in model.params.items() if k != key}
        if _fit_failure(_with(model, rest)) is None:
            raise ParamError(
                f"model.params.{key}: {value!r} is refused by {model.name} ({failure})"
            )
    for key, value in model.params.items():
        alone = _fit_failure(_with(model, {key: value}))
        if alone is not None:
            raise ParamError(f"model.params.{key}: {value!r} is refused by {model.name} ({alone})")
    raise ParamError(
        f"model.params: {sorted(model.params)} are refused together by {model.name} ({failure})"
    )
