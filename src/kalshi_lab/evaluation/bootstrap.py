"""Bootstrap over releases: the uncertainty of a mean per-row loss difference.

Rows of one event are far from independent (market-days of one market, and the strikes of one
event, exclusive brackets or a ladder's cumulative thresholds, all settle on one value of one
underlying), and neither are events that resolve on one data release (the events of one series
family closing on one date: :mod:`kalshi_lab.resolution`), so a row or an event bootstrap would
give intervals too narrow. Releases are resampled with replacement instead, each bringing all
of its rows; the statistic is the row-weighted mean difference over the resampled rows.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: resamples drawn at once: bounds memory at CHUNK x n_clusters counts on real data
CHUNK = 250
#: a mean loss difference closer to 0 than this is float rounding, a tie: a model that *is*
#: the market (the anchored model without a feature) must not count as beating it
TIE = 1e-12


def cluster_bootstrap(
    clusters: np.ndarray, diff: np.ndarray, n_samples: int, seed: int
) -> dict[str, float]:
    """Mean of ``diff`` (model loss minus baseline loss per row) with its 95 % interval, rows
    resampled by their cluster (release) label in ``clusters``.

    ``share_below_zero`` is the share of resamples in which the model's loss is lower (by more
    than :data:`TIE`).
    """
    codes, uniques = pd.factorize(np.asarray(clusters))
    n_clusters = len(uniques)
    sums = np.bincount(codes, weights=np.asarray(diff, dtype=float), minlength=n_clusters)
    sizes = np.bincount(codes, minlength=n_clusters).astype(float)
    rng = np.random.default_rng(seed)
    means = np.empty(n_samples)
    uniform = np.full(n_clusters, 1.0 / n_clusters)
    for start in range(0, n_samples, CHUNK):
        stop = min(start + CHUNK, n_samples)
        draws = rng.multinomial(n_clusters, uniform, size=stop - start)
        means[start:stop] = (draws @ sums) / (draws @ sizes)
    lower, upper = np.percentile(means, [2.5, 97.5])
    return {
        "estimate": float(sums.sum() / sizes.sum()),
        "lower": float(lower),
        "upper": float(upper),
        "share_below_zero": float(np.mean(means < -TIE)),
    }
