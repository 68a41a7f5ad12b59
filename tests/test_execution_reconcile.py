"""reconcile: the bot's account against the venue's positions and cash, one message naming every
difference; against a stub venue, the simulated exchange and the local Kalshi server."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import pytest

from kalshi_lab.execution.account import KalshiAccount
from kalshi_lab.execution.decision import ContractOrder, Fill
from kalshi_lab.execution.exchange import (
    BaseKalshiExchange,
    SettledMarket,
    SimulatedKalshiExchange,
)
from kalshi_lab.execution.live import LiveKalshiExchange
from kalshi_lab.execution.quotes import BOOK_COLUMNS, CANDLE_COLUMNS
from kalshi_lab.execution.reconcile import ReconciliationError, reconcile
from test_execution_live import EVENT, START, TS, A, C, make_client, start_server, write_live_raw

T = pd.Timestamp("2025-01-01", tz="UTC")


class Venue(BaseKalshiExchange):
    """A venue that only answers positions and balance."""

    def __init__(self, positions: dict[str, tuple[str, int]], balance: int) -> None:
        self._positions, self._balance = positions, balance

    def positions(self) -> dict[str, tuple[str, int]]:
        return dict(self._positions)

    def balance_cents(self) -> int:
        return self._balance

    def quotes(self, tickers: Sequence[str], ts: pd.Timestamp) -> pd.DataFrame:
        raise NotImplementedError

    def submit(self, order: ContractOrder, ts: pd.Timestamp) -> list[Fill]:
        raise NotImplementedError

    def cancel(self, order: ContractOrder, ts: pd.Timestamp) -> None:
        raise NotImplementedError

    def fills(self, until: pd.Timestamp) -> list[Fill]:
        raise NotImplementedError

    def settlements(self, until: pd.Timestamp) -> list[SettledMarket]:
        raise NotImplementedError


def buy(account: KalshiAccount, ticker: str, side: str, count: int, price: int) -> None:
    fill = Fill(T, T, ticker, side, "buy", count, count * price, 1, "book")
    account.apply(fill, "E")


def test_an_account_that_matches_the_venue_passes():
    account = KalshiAccount(10_000)
    buy(account, "X", "yes", 3, 40)
    buy(account, "Y", "no", 2, 30)
    reconcile(account, Venue({"X": ("yes", 3), "Y": ("no", 2)}, 10_000 - 121 - 61))
    reconcile(KalshiAccount(0), Venue({}, 0))


def test_every_difference_is_named_in_one_message():
    account = KalshiAccount(10_000)
    buy(account, "X", "yes", 3, 40)  # venue: 5 YES
    buy(account, "Y", "no", 2, 30)  # venue: 2 YES
    buy(account, "Z", "yes", 1, 50)  # venue: nothing
    venue = Venue({"X": ("yes", 5), "Y": ("yes", 2), "W": ("no", 4)}, 9_000)
    with pytest.raises(ReconciliationError) as caught:
        reconcile(account, venue)
    message = str(caught.value)
    assert message == (
        "account and exchange disagree on 5 item(s): "
        "W: ours nothing, exchange 4 NO; "
        "X: ours 3 YES, exchange 5 YES; "
        "Y: ours 2 NO, exchange 2 YES; "
        "Z: ours 1 YES, exchange nothing; "
        "cash: ours 9767 cents, exchange 9000 cents (ours +767 cents)"
    )


def test_cash_alone_and_check_cash_off():
    account = KalshiAccount(500)
    with pytest.raises(ReconciliationError, match=r"cash: ours 500 cents, exchange 498 .*\+2"):
        reconcile(account, Venue({}, 498))
    reconcile(account, Venue({}, 498), check_cash=False)
    with pytest.raises(ReconciliationError, match="X: ours nothing, exchange 1 YES"):
        reconcile(account, Venue({"X": ("yes", 1)}, 498), check_cash=False)


def test_zero_contract_positions_are_no_positions():
    reconcile(KalshiAccount(0), Venue({"X": ("yes", 0)}, 0))


def test_a_backtest_that_books_what_the_simulated_venue_reports_reconciles():
    book = pd.DataFrame(
        [("A", T, "no", 0.55, 10.0), ("A", T, "yes", 0.40, 10.0)],
        columns=BOOK_COLUMNS,
    )
    markets = pd.DataFrame(
        {"ticker": ["A"], "event_ticker": ["E"], "series_ticker": ["S"],
         "close_time": [T + pd.Timedelta(hours=5)],
         "settlement_ts": [T + pd.Timedelta(hours=6)], "result": ["yes"]}
    )  # fmt: skip
    series = pd.DataFrame({"series_ticker": ["S"], "fee_type": ["quadratic"], "fee_multiplier": [1.0]})  # fmt: skip
    candles = pd.DataFrame(columns=CANDLE_COLUMNS)
    venue = SimulatedKalshiExchange(book, candles, markets, series, 0.07, 1.0, 0.1, 10_000)
    account = KalshiAccount(10_000)
    for fill in venue.submit(ContractOrder("A", "E", "yes", "buy", 4, 50, T), T):
        account.apply(fill, "E")
    reconcile(account, venue)
    for settled in venue.settlements(T + pd.Timedelta(days=1)):
        account.settle(settled.ticker, settled.result, settled.ts)
    reconcile(account, venue)
    assert account.cash_cents == venue.balance_cents() == 10_000 - 180 - 7 + 400
    account.cash_cents += 1  # a booking the venue never made
    with pytest.raises(ReconciliationError, match=r"\+1 cents"):
        reconcile(account, venue)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from cryptography.hazmat.primitives.asymmetric import rsa

    from kalshi_lab.server import Dataset

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    srv = start_server(Dataset.load(write_live_raw(tmp_path_factory.mktemp("raw"))), key)
    try:
        yield srv, make_client(srv, key)
    finally:
        srv.stop()


def test_a_wrong_account_fails_against_the_kalshi_venue_naming_the_ticker(server):
    _, client = server
    exchange = LiveKalshiExchange(client, since=TS)
    right, wrong = KalshiAccount(START), KalshiAccount(START)
    for ticker, side, count, limit in ((A, "yes", 5, 48), (C, "no", 2, 70)):
        o = ContractOrder(ticker, EVENT[ticker], side, "buy", count, limit, TS)
        fills = exchange.submit(o, TS)  # one per price level, as Kalshi lists them
        for fill in fills:
            right.apply(fill, o.event_ticker)
        if ticker == A:  # the wrong account misses A's last level: one contract and its cost
            assert [f.count for f in fills] == [4, 1]
            fills = fills[:-1]
        for fill in fills:
            wrong.apply(fill, o.event_ticker)
    reconcile(right, exchange)
    with pytest.raises(ReconciliationError) as caught:
        reconcile(wrong, exchange)
    message = str(caught.value)
    assert f"{A}: ours 4 YES, exchange 5 YES" in message
    assert C not in message
    assert f"cash: ours {wrong.cash_cents} cents, exchange {right.cash_cents} cents" in message
