"""Bootstrap over releases: the uncertainty of a mean per-row loss difference.

Rows of one event are far from independent (market-days of one market, and the strikes of one
event, exclusive brackets or a ladder's cumulative thresholds, all settle on one value of one
underlying), and neither are events that resolve on one data release (the events of one series
family closing on one date: :mod:`kalshi_lab.resolution`), so a row or an event bootstrap would
give intervals too narrow. Releases are resampled with replacement instead, each bringing all
of its rows; the statistic is the row-weighted mean difference over the resampled rows.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from typing import TypeVar

import numpy as np
import pandas as pd

#: what names one difference (a baseline's name and a loss's, say)
Key = TypeVar("Key", bound=Hashable)

#: resamples drawn at once: bounds memory at CHUNK x n_clusters counts on real data
CHUNK = 250
#: a mean loss difference closer to 0 than this is float rounding, a tie: a model that *is*
#: the market (the anchored model without a feature) must not count as beating it
TIE = 1e-12


def cluster_bootstrap(
    clusters: np.ndarray, diffs: Mapping[Key, np.ndarray], n_samples: int, seed: int
) -> dict[Key, dict[str, float]]:
    """Per named difference in ``diffs`` (model loss minus baseline loss per row), its mean
    with its 95 % interval, rows resampled by their cluster (release) label in ``clusters``.

    Every difference is resampled with the same draws: the ones a call with that difference
    alone would make (same seed), drawn once. The draws are most of the cost (a multinomial
    over the clusters per resample), and a period's report bootstraps six differences on one
    set of rows.

    ``share_below_zero`` is the share of resamples in which the model's loss is lower (by more
    than :data:`TIE`).
    """
    codes, uniques = pd.factorize(np.asarray(clusters))
    n_clusters = len(uniques)
    sizes = np.bincount(codes, minlength=n_clusters).astype(float)
    sums = {
        name: np.bincount(codes, weights=np.asarray(diff, dtype=float), minlength=n_clusters)
        for name, diff in diffs.items()
    }
    rng = np.random.default_rng(seed)
    means = {name: np.empty(n_samples) for name in diffs}
    uniform = np.full(n_clusters, 1.0 / n_clusters)
    for start in range(0, n_samples, CHUNK):
        stop = min(start + CHUNK, n_samples)
        draws = rng.multinomial(n_clusters, uniform, size=stop - start)
        rows = draws @ sizes
        for name, total in sums.items():
            means[name][start:stop] = (draws @ total) / rows
    return {name: _summary(sums[name], sizes, means[name]) for name in diffs}


def _summary(sums: np.ndarray, sizes: np.ndarray, means: np.ndarray) -> dict[str, float]:
    """The estimate, the percentile interval of the resampled ``means`` and the share below 0."""
    lower, upper = np.percentile(means, [2.5, 97.5])
    return {
        "estimate": float(sums.sum() / sizes.sum()),
        "lower": float(lower),
        "upper": float(upper),
        "share_below_zero": float(np.mean(means < -TIE)),
    }
