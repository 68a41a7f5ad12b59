"""Figures show what was measured: no line drawn across weeks nothing was marked in."""

import numpy as np
import pandas as pd

from kalshi_lab import figures


def test_the_equity_line_stops_across_a_gap_and_nowhere_else():
    days = pd.to_datetime(
        ["2025-04-02", "2025-04-03", "2025-04-04", "2025-04-05", "2025-05-20"], utc=True
    )
    ts, values = figures._broken_at_gaps(pd.Series(days), pd.Series([1.0, 2, 3, 4, 5]))
    # one NaN between the last decision and the settlement weeks later, inside the gap
    assert np.isnan(values).tolist() == [False] * 4 + [True, False]
    assert ts[3] < ts[4] < ts[5]
    even = pd.Series(pd.date_range("2025-04-02", periods=5, freq="D", tz="UTC"))
    ts, values = figures._broken_at_gaps(even, pd.Series([1.0, 2, 3, 4, 5]))
    assert len(ts) == 5 and not np.isnan(values).any()


def test_an_equity_figure_with_a_gap_is_a_png(tmp_path):
    equity = pd.DataFrame(
        {
            "ts": pd.to_datetime(
                ["2025-04-02", "2025-04-03", "2025-04-04", "2025-05-20"], utc=True
            ),
            "equity": [10_000.0, 9_800.0, 10_100.0, 9_900.0],
        }
    )
    figures.equity_curve(tmp_path / "e.png", equity, "validation, 2025-04-02 to 2025-05-01", 10_000)
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"
