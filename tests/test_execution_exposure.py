"""Worst-case loss of an event's positions and buys from its structure: the underlying's states
are the strikes, the open intervals between them and the tails, exactly; markets whose payoff is
not known lose everything in every state (the sum of the costs).

The markets tables (tests/event_books.py) are classified as the parquet stage classifies them;
the property test checks the states against a brute force over every strike, a value between
each pair and beyond either end, and drawn values.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from event_books import BRACKETS, LADDER, NAN, brute_losses, markets, probe_values, structured_event
from kalshi_lab.execution.account import ContractPosition
from kalshi_lab.execution.decision import FEE_BOUND_CENTS, ContractOrder
from kalshi_lab.execution.exposure import EventPayoffs

T0 = pd.Timestamp("2025-06-01", tz="UTC")


def held(ticker: str, side: str, contracts: int, cost: int, fees: int = 0) -> ContractPosition:
    return ContractPosition(ticker, "", side, T0, contracts, cost, fees)


def buy(ticker: str, side: str, count: int, limit: int) -> ContractOrder:
    return ContractOrder(ticker, "", side, "buy", count, limit, T0)


def test_a_ladders_states_are_its_strikes_the_intervals_between_and_the_tails():
    payoffs = EventPayoffs(LADDER)
    assert payoffs.n_states("U") == 5
    assert payoffs.wins("U-T4.0", "U", "yes").tolist() == [False, False, True, True, True]
    assert payoffs.wins("U-T4.2", "U", "yes").tolist() == [False, False, False, True, True]
    assert payoffs.wins("U-T4.2", "U", "no").tolist() == [True, True, True, False, False]


def test_a_range_bet_on_a_ladder_loses_only_outside_the_range_never_its_sum():
    """YES above 4.0 and NO at or above 4.2 both win in (4.0, 4.2): the book never loses both."""
    payoffs = EventPayoffs(LADDER)
    yes_low = held("U-T4.0", "yes", 100, 7000, 100)  # basis 7,100
    no_high = held("U-T4.2", "no", 100, 6000, 100)  # basis 6,100
    loss = payoffs.loss("U", [yes_low, no_high])
    basis = 13_200
    one, both = basis - 10_000, basis - 20_000  # one side wins; both win
    assert loss.cents.tolist() == [one, one, both, one, one]
    assert loss.worst_cents == 3200  # not the 13,200 the two cost


def test_yes_high_and_no_low_on_a_ladder_lose_together_between_the_strikes():
    payoffs = EventPayoffs(LADDER)
    loss = payoffs.loss("U", [held("U-T4.2", "yes", 100, 3000), held("U-T4.0", "no", 50, 2500)])
    # at 4.0 NO above 4.0 wins; in (4.0, 4.2) both lose; at 4.2 YES at-or-above 4.2 wins
    assert loss.cents.tolist() == [500, 500, 5500, -4500, -4500]
    assert loss.worst_cents == 5500  # the sum


def test_greater_and_greater_or_equal_differ_at_the_strike():
    """Two tails at 4: below and above leave 4 itself to neither; at-or-below takes it."""
    open_ends = EventPayoffs(
        markets(("T-L", "T", "less", NAN, 4.0), ("T-G", "T", "greater", 4.0, NAN))
    )
    closed = EventPayoffs(
        markets(("T-L", "T", "less_or_equal", NAN, 4.0), ("T-G", "T", "greater", 4.0, NAN))
    )
    both_yes = [held("T-L", "yes", 100, 4000), held("T-G", "yes", 100, 5000)]
    assert open_ends.loss("T", both_yes).cents.tolist() == [-1000, 9000, -1000]
    assert closed.loss("T", both_yes).cents.tolist() == [-1000, -1000, -1000]
    both_no = [held("T-L", "no", 100, 6000), held("T-G", "no", 100, 5000)]
    assert open_ends.loss("T", both_no).worst_cents == 1000  # one NO always wins
    assert closed.loss("T", both_no).worst_cents == 1000


def test_between_includes_both_ends_and_a_gap_between_ranges_pays_no_yes():
    covered = markets(
        ("H-T10", "H", "less", NAN, 10.0),
        ("H-B15", "H", "between", 10.0, 19.99),
        ("H-T20", "H", "greater", 19.99, NAN),
    )
    payoffs = EventPayoffs(covered)
    assert payoffs.wins("H-B15", "H", "yes").tolist() == [False, True, True, True, False]
    every_yes = [held(t, "yes", 10, 300) for t in covered["ticker"]]
    assert payoffs.loss("H", every_yes).worst_cents == 900 - 1000  # exactly one YES wins
    gapped = EventPayoffs(
        markets(("G-B15", "G", "between", 10.0, 19.99), ("G-B25", "G", "between", 20.0, 29.99))
    )
    loss = gapped.loss("G", [held("G-B15", "yes", 10, 300), held("G-B25", "yes", 10, 300)])
    # below 10, (19.99, 20) and above 29.99 pay neither
    assert loss.cents.tolist() == [600, -400, -400, -400, 600, -400, -400, -400, 600]


def test_no_on_two_brackets_never_loses_twice_yes_on_two_loses_both_elsewhere():
    payoffs = EventPayoffs(BRACKETS)
    no_a, no_b = held("N-B78.5", "no", 100, 7000), held("N-B80.5", "no", 200, 16_000)
    assert payoffs.loss("N", [no_a, no_b]).worst_cents == 23_000 - 10_000  # B80.5 wins: 80-81
    yes_a, yes_b = held("N-B78.5", "yes", 100, 3000), held("N-B80.5", "yes", 200, 4000)
    assert payoffs.loss("N", [yes_a, yes_b]).worst_cents == 7000  # e.g. in (79, 80)


def test_a_binary_loses_its_basis_when_its_side_loses():
    payoffs = EventPayoffs(markets(("R", "RE", None, NAN, NAN)))  # one market: a yes/no question
    assert payoffs.n_states("RE") == 2
    assert payoffs.loss("RE", [held("R", "yes", 100, 4000)]).cents.tolist() == [-6000, 4000]
    assert payoffs.loss("RE", [held("R", "no", 100, 6000)]).cents.tolist() == [6000, -4000]


def test_other_structures_unknown_markets_and_unknown_events_lose_everything():
    table = pd.concat(
        [
            LADDER,
            markets(("F-H0", "F", "custom", NAN, NAN), ("F-C25", "F", "custom", NAN, NAN)),
        ]
    )
    payoffs = EventPayoffs(table)
    assert (table["structure"].tolist(), payoffs.n_states("F")) == (
        ["ladder"] * 2 + ["other"] * 2,
        1,
    )
    no_both = [held("F-H0", "no", 100, 7000), held("F-C25", "no", 100, 8000)]
    assert payoffs.loss("F", no_both).cents.tolist() == [15_000]
    assert payoffs.loss("X", [held("X-1", "yes", 10, 500)]).cents.tolist() == [500]  # never learned
    # a market of a known ladder missing from the table: its basis is lost in every state
    stranger = held("U-T9.9", "yes", 10, 500)
    with_it = payoffs.loss("U", [held("U-T4.0", "yes", 100, 4000), stranger]).cents
    assert with_it.tolist() == [4500, 4500, -5500, -5500, -5500]


def test_a_buy_not_filled_counts_its_bound_where_it_loses_and_nothing_where_it_wins():
    """It may fill in full (its bound lost where it loses) or not at all (nothing won)."""
    payoffs = EventPayoffs(LADDER)
    pending = buy("U-T4.2", "no", 100, 30)  # bound 100 x (30 + 2)
    loss = payoffs.loss("U", [held("U-T4.0", "yes", 100, 4000)], [pending])
    assert pending.cost_bound_cents == 3200 == 100 * (30 + FEE_BOUND_CENTS)
    assert loss.cents.tolist() == [4000, 4000, -6000, -6000 + 3200, -6000 + 3200]
    # YES at or above 4.2 loses up to 4.2, where YES above 4.0 held loses already (4,000)
    assert loss.room_cents("U-T4.2", "yes", cap_cents=10_000) == 6000
    assert loss.room_cents("U-T4.2", "no", cap_cents=10_000) == 10_000 + 2800  # a hedge
    loss.add("U-T4.2", "yes", 1000)
    assert loss.cents.tolist() == [5000, 5000, -5000, -2800, -2800]


def test_learning_an_event_again_replaces_what_was_known_of_it():
    payoffs = EventPayoffs(LADDER)
    payoffs.learn(markets(*[(f"U-T{x}", "U", "greater", x, NAN) for x in (4.0, 4.1, 4.2)]))
    assert payoffs.n_states("U") == 7 and payoffs.wins("U-T4.1", "U", "yes").sum() == 3
    payoffs.learn(markets(("U-T4.0", "U", "greater", 4.0, NAN), ("U-X", "U", "custom", NAN, NAN)))
    assert payoffs.n_states("U") == 1  # now of other structure: forgotten
    assert not payoffs.wins("U-T4.0", "U", "yes").any()
    payoffs.learn(LADDER.drop(columns="structure"))  # not the parquet table: nothing learned
    assert payoffs.n_states("U") == 1


# --- any ladder or bracket set, any book --------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    structured_event(),
    st.data(),
    st.lists(st.floats(-3.0, 3.0, allow_nan=False), max_size=20),
)
def test_the_worst_case_is_the_worst_of_every_value_the_underlying_can_take(table, data, values):
    assert set(table["structure"]) <= {"ladder", "bracket"}
    tickers = [*table["ticker"], "E-UNLISTED"]  # a market the table does not list
    positions, buys = [], []
    for ticker in tickers:
        what = data.draw(st.sampled_from(["none", "held", "buy"]))
        side = data.draw(st.sampled_from(["yes", "no"]))
        count = data.draw(st.integers(1, 500))
        if what == "held":
            positions.append(
                held(
                    ticker,
                    side,
                    count,
                    count * data.draw(st.integers(1, 99)),
                    data.draw(st.integers(0, 2 * count)),
                )
            )
        elif what == "buy":
            buys.append(buy(ticker, side, count, data.draw(st.integers(1, 99))))
    # another event listed with it, rows interleaved: learning is of all events at once
    other = markets(("O-T1", "O", "greater", 1.0, NAN), ("O-T2", "O", "greater", 2.0, NAN))
    mixed = pd.concat([table, other]).sample(frac=1.0, random_state=len(values))
    loss = EventPayoffs(mixed).loss("E", positions, buys)

    v = probe_values(table, values)
    brute, loses = brute_losses(table, v, positions, buys)
    assert loss.worst_cents == brute.max()
    cap = data.draw(st.integers(0, 200_000))
    for ticker in tickers:
        for side in ("yes", "no"):
            where = loses.get((ticker, side), np.ones(len(v), dtype=bool))
            assert loss.room_cents(ticker, side, cap) == cap - brute[where].max()
