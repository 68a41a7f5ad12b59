"""client_order_id: deterministic from the decision, and always an id Kalshi accepts.

Kalshi's rule (ClOrdID, https://docs.kalshi.com/fix/order-entry): at most 64 characters matching
``^[\\-\\w:+=/]*$``. Real tickers break both when pasted into an id: dots (``KXU3-25JUN-B4.15``)
and lengths of 50 characters and more (multivariate "MVE" tickers).
"""

from __future__ import annotations

import re

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kalshi_lab.execution import ContractOrder, NestedKalshiExecutor
from kalshi_lab.execution.decision import (
    CLIENT_ORDER_ID_MAX,
    check_client_order_id,
    child_order_id,
    client_order_id,
)

#: Kalshi's own pattern, written out here rather than imported: the test checks the module's
KALSHI_ID = re.compile(r"^[\-\w:+=/]*$", re.ASCII)
T0 = pd.Timestamp("2025-06-01T14:00:00", tz="UTC")

_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_HEX = "0123456789ABCDEF"


def _strike() -> st.SearchStrategy[str]:
    """``T4.1``, ``B4.15``, ``T104999.99``, ``-0.5``: thresholds and brackets, dots included."""
    whole = st.integers(0, 10**6).map(str)
    frac = st.integers(0, 99).map(lambda f: f".{f}")
    return st.builds(
        lambda kind, w, f: f"{kind}{w}{f}",
        st.sampled_from(["T", "B", ""]),
        whole,
        st.one_of(st.just(""), frac),
    )


def _ticker() -> st.SearchStrategy[str]:
    """Kalshi's ticker shapes: SERIES-EVENT-STRIKE (e.g. KXU3-25JUN-B4.15, KXHIGHNY-25JUN01-T85,
    KXBTCD-25JUN0117-T104999.99), multivariate ``KXMVE...-S2025<hex>-<hex>`` up to ~70
    characters, and anything else (a ticker the next product invents)."""
    series = st.text(_UPPER + "0123456789", min_size=2, max_size=40).map(lambda s: "KX" + s)
    event = st.text(_UPPER + "0123456789", min_size=3, max_size=14)
    standard = st.builds(lambda s, e, k: f"{s}-{e}-{k}", series, event, _strike())
    mve = st.builds(
        lambda s, e, m: f"KXMVE{s}-S2025{e}-{m}",
        st.text(_UPPER, min_size=10, max_size=30),
        st.text(_HEX, min_size=10, max_size=12),
        st.text(_HEX, min_size=11, max_size=11),
    )
    return st.one_of(standard, mve, st.text(min_size=1, max_size=120))


_KEY = st.tuples(
    st.integers(0, 2**62).map(lambda ns: pd.Timestamp(ns, tz="UTC")),
    _ticker(),
    st.sampled_from(["buy", "sell"]),
    st.sampled_from(["yes", "no"]),
)


def _order(key: tuple[pd.Timestamp, str, str, str]) -> ContractOrder:
    decided_at, ticker, action, side = key
    return ContractOrder(ticker, "E", side, action, 5, 40, decided_at)


@given(_KEY)
def test_every_derived_id_is_one_kalshi_accepts(key):
    oid = _order(key).client_order_id
    assert len(oid) <= 64 and KALSHI_ID.match(oid), oid


@given(_KEY)
def test_the_same_decision_gives_the_same_id(key):
    decided_at, ticker, action, side = key
    again = (pd.Timestamp(decided_at.isoformat()), "".join(ticker), action, side)  # new objects
    assert _order(key).client_order_id == _order(again).client_order_id


@given(_KEY, _KEY)
def test_different_decisions_give_different_ids(a, b):
    same = (a[0].value, *a[1:]) == (b[0].value, *b[1:])
    assert (_order(a).client_order_id == _order(b).client_order_id) == same


@pytest.mark.parametrize(
    ("a", "b"),
    [  # keys whose naive concatenations coincide
        ((0, "A/buy", "sell", "yes"), (0, "A", "buy", "sell/yes")),
        ((1, "2", "buy", "yes"), (12, "", "buy", "yes")),
        ((0, "KXU3-25JUN-B4.1", "buy", "yes"), (0, "KXU3-25JUN-B4.15", "buy", "yes")),
    ],
)
def test_keys_that_read_alike_side_by_side_still_differ(a, b):
    assert client_order_id(*a) != client_order_id(*b)


def test_the_id_is_fixed_across_processes_and_releases():
    """A restarted bot must regenerate the id it sent before: the value is pinned, so neither a
    per-process hash nor a changed namespace can slip in."""
    oid = ContractOrder("KXU3-25JUN-B4.15", "KXU3-25JUN", "yes", "buy", 10, 40, T0).client_order_id
    assert oid == "6284f902-ecbc-586c-9386-8fc34ce18331"


@given(
    st.from_regex(r"[\-\w:+=/]{1,64}", fullmatch=True).filter(lambda s: s.isascii()),
    st.integers(0, 10**6),
)
def test_child_ids_are_valid_deterministic_and_distinct_per_step(parent, step):
    child = child_order_id(parent, step)
    assert len(child) <= 64 and KALSHI_ID.match(child)
    assert child == child_order_id(parent, step)
    assert child != child_order_id(parent, step + 1)
    if len(parent) + 1 + len(str(step)) <= 64:
        assert child == f"{parent}-{step}"  # a child names its parent when it can


def test_the_nested_executor_gives_its_children_valid_ids():
    long_parent = ContractOrder("A", "E", "yes", "buy", 4, 40, T0, client_order_id="x" * 64)
    for parent in (long_parent, _order((T0, "KXU3-25JUN-B4.15", "buy", "yes"))):
        children = [NestedKalshiExecutor._child(parent, 1, k, T0) for k in range(3)]
        ids = [c.client_order_id for c in children]
        assert len(set(ids)) == 3
        assert all(len(i) <= 64 and KALSHI_ID.match(i) for i in ids)


@pytest.mark.parametrize(
    "bad", ["KXU3-25JUN-B4.15", "a b", "x" * (CLIENT_ORDER_ID_MAX + 1), "é", "id#1"]
)
def test_an_id_kalshi_would_refuse_is_refused_when_the_order_is_made(bad):
    with pytest.raises(ValueError, match="client_order_id"):
        check_client_order_id(bad)
    with pytest.raises(ValueError, match="client_order_id"):
        ContractOrder("A", "E", "yes", "buy", 1, 40, T0, client_order_id=bad)


@pytest.mark.parametrize("good", ["x" * CLIENT_ORDER_ID_MAX, "a-b_c:d+e=f/g", "mine"])
def test_an_id_kalshi_accepts_is_kept(good):
    assert (
        ContractOrder("A", "E", "yes", "buy", 1, 40, T0, client_order_id=good).client_order_id
        == good
    )
