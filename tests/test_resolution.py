"""An event resolves at its last settlement (else its latest known close), and events of one
series family closing on one date are one release."""

import pandas as pd

from kalshi_lab.resolution import event_resolution, release_clusters, series_family

T0 = pd.Timestamp("2025-03-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
DAY = pd.Timedelta(days=1)


def rows(event: str, as_of_days: list[int], settled: list[pd.Timestamp | None], days_to_close):
    """One row per (strike, day) of ``event``: strike i settled at ``settled[i]``."""
    return pd.DataFrame(
        [
            {
                "event_ticker": event,
                "as_of": T0 + d * DAY,
                "settlement_ts": pd.NaT if s is None else s,
                "DAYS_TO_CLOSE": days_to_close - d,
            }
            for s in settled
            for d in as_of_days
        ]
    )


def test_an_event_resolves_at_its_last_settlement_or_latest_known_close():
    frame = pd.concat(
        [
            # settled: the later of its two strikes' settlements
            rows("A", [0, 1], [T0 + 3 * DAY, T0 + 3 * DAY + 5 * HOUR], days_to_close=3.0),
            # one strike unsettled: the close known in advance, not the other's settlement
            rows("B", [0, 1], [T0 + 2 * DAY, None], days_to_close=9.0),
            # settled before its last decision (bad data): never before its own rows
            rows("C", [0, 4], [T0 + 2 * DAY], days_to_close=5.0),
        ],
        ignore_index=True,
    )
    resolves = event_resolution(frame).groupby(frame["event_ticker"]).agg(["min", "max"])
    assert (resolves["min"] == resolves["max"]).all()  # one time per event, on every row
    assert resolves["max"].to_dict() == {
        "A": T0 + 3 * DAY + 5 * HOUR,
        "B": T0 + 9 * DAY,
        "C": T0 + 4 * DAY,
    }


def test_series_family_drops_kalshis_relisting_prefix_only():
    series = pd.Series(["KXU3", "U3", "KXCPI", "CPIKX", "KX"])
    assert series_family(series).tolist() == ["U3", "U3", "CPI", "CPIKX", ""]


def test_a_release_is_a_series_family_closing_on_one_utc_date():
    markets = pd.DataFrame(
        {
            "event_ticker": ["U3-25MAR", "U3-25MAR", "KXU3-25MAR", "U3-25APR", "CPI-25MAR"],
            "series_ticker": ["U3", "U3", "KXU3", "U3", "KXCPI"],
            "close_time": pd.to_datetime(
                [
                    "2025-03-07 13:30",
                    "2025-03-07 12:00",
                    "2025-03-07 23:59",  # same UTC date, other hour: same release
                    "2025-04-04 13:30",
                    "2025-03-07 13:30",  # same date, another family: another release
                ],
                utc=True,
            ),
        }
    )
    assert release_clusters(markets).tolist() == [
        "U3 2025-03-07",
        "U3 2025-03-07",
        "U3 2025-03-07",
        "U3 2025-04-04",
        "CPI 2025-03-07",
    ]
