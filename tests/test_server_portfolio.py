"""The local server's signed portfolio endpoints over HTTP: signatures, order matching against
the recorded books, fees, netted positions, balance, idempotency keys, listings."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from kalshi_lab.client.auth import KalshiSigner
from kalshi_lab.server import Dataset, LocalKalshiServer, ServerConfig
from server_support import (
    CLOSED_B,
    CUTOFF,
    HALF_C,
    KEY_ID,
    LATE_D,
    OPEN_A,
    KalshiAuth,
    follow,
    write_handmade_raw,
)

START = 100_000  # cents


@pytest.fixture(scope="module")
def handmade(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return Dataset.load(write_handmade_raw(tmp_path_factory.mktemp("raw")))


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def start(handmade: Dataset, key: rsa.RSAPrivateKey, balance: int = START) -> LocalKalshiServer:
    config = ServerConfig(
        rate_limit=False,
        cutoff=CUTOFF,
        public_key=key.public_key(),
        key_id=KEY_ID,
        starting_balance_cents=balance,
    )
    return LocalKalshiServer(handmade, config).start()


class Account:
    """A signed session against one fresh server."""

    def __init__(self, srv: LocalKalshiServer, key: rsa.RSAPrivateKey) -> None:
        self.srv = srv
        self.session = requests.Session()
        self.session.auth = KalshiAuth(KalshiSigner(KEY_ID, key))

    def get(self, path: str, **params: Any) -> requests.Response:
        return self.session.get(self.srv.base_url + path, params=params)

    def order(self, expect: int = 201, **body: Any) -> dict[str, Any]:
        r = self.session.post(self.srv.base_url + "/portfolio/orders", json=body)
        assert r.status_code == expect, r.text
        return r.json()

    def buy(
        self, ticker: str, side: str, count: int | str, price: str, **extra: Any
    ) -> dict[str, Any]:
        field = "count_fp" if isinstance(count, str) else "count"
        return self.order(
            ticker=ticker,
            side=side,
            action="buy",
            **{field: count, f"{side}_price_dollars": price},
            **extra,
        )["order"]

    def balance(self) -> int:
        return self.get("/portfolio/balance").json()["balance"]

    def book(self, ticker: str) -> dict[str, list[list[str]]]:
        return self.get(f"/markets/{ticker}/orderbook").json()["orderbook_fp"]

    def fills(self, **params: Any) -> list[dict[str, Any]]:
        url = self.srv.base_url + "/portfolio/fills"
        return [f for page in follow(self.session, url, params, "fills") for f in page]

    def orders(self, **params: Any) -> list[dict[str, Any]]:
        url = self.srv.base_url + "/portfolio/orders"
        return [o for page in follow(self.session, url, params, "orders") for o in page]

    def position(self, ticker: str) -> dict[str, Any]:
        (p,) = self.get("/portfolio/positions", ticker=ticker).json()["market_positions"]
        return p


@pytest.fixture
def account(handmade, private_key) -> Iterator[Account]:
    srv = start(handmade, private_key)
    try:
        yield Account(srv, private_key)
    finally:
        srv.stop()


def error(r: requests.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()
    assert {"code", "message", "details", "service"} == body.keys()
    if code is not None:
        assert body["code"] == code, body
    return body


# --- signatures --------------------------------------------------------------------------------


def test_a_signed_request_is_accepted_and_the_query_is_not_signed(account):
    r = account.get("/portfolio/orders", ticker=OPEN_A, limit=5)
    assert r.status_code == 200, r.text
    assert r.json() == {"orders": [], "cursor": ""}
    assert account.get("/portfolio/balance").json() == {
        "balance": START,
        "portfolio_value": 0,
        "updated_ts": account.srv.now,
    }


def signed_headers(
    key: rsa.RSAPrivateKey, method: str, path: str, *, key_id: str = KEY_ID, skew_s: float = 0
) -> dict[str, str]:
    clock = lambda: int((time.time() + skew_s) * 1000)  # noqa: E731
    return KalshiSigner(key_id, key, clock_ms=clock).headers(method, path)


def test_bad_signatures_are_401_naming_the_header_and_echoing_nothing(account, private_key):
    url = account.srv.base_url + "/portfolio/balance"
    path = "/trade-api/v2/portfolio/balance"
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    good = signed_headers(private_key, "GET", path)
    cases = {
        "KALSHI-ACCESS-SIGNATURE": [
            signed_headers(other, "GET", path),  # somebody else's key
            signed_headers(
                private_key, "GET", "/trade-api/v2/portfolio/positions"
            ),  # tampered path
            signed_headers(private_key, "POST", path),  # tampered method
            {**good, "KALSHI-ACCESS-SIGNATURE": "not base64!"},
        ],
        "KALSHI-ACCESS-TIMESTAMP": [
            signed_headers(private_key, "GET", path, skew_s=-120),  # stale
            signed_headers(private_key, "GET", path, skew_s=+120),  # from the future
        ],  # a timestamp that is no number at all is a 400: test_server_hardening
        "KALSHI-ACCESS-KEY": [signed_headers(private_key, "GET", path, key_id="someone-else")],
    }
    for header in ("KALSHI-ACCESS-KEY", "KALSHI-ACCESS-TIMESTAMP", "KALSHI-ACCESS-SIGNATURE"):
        cases[header].append({k: v for k, v in good.items() if k != header})
    for header, variants in cases.items():
        for headers in variants:
            body = error(requests.get(url, headers=headers), 401, "unauthorized")
            assert header in body["message"], (header, body)
            text = str(body)
            assert all(v not in text for k, v in headers.items() if k != "KALSHI-ACCESS-TIMESTAMP")
    assert requests.get(url, headers=good).status_code == 200


def test_portfolio_endpoints_are_closed_without_a_configured_key(handmade):
    with LocalKalshiServer(handmade, ServerConfig(rate_limit=False)) as srv:
        body = error(requests.get(srv.base_url + "/portfolio/balance"), 401)
        assert "public key" in body["message"]


# --- matching, fees, balance -------------------------------------------------------------------


def test_a_buy_takes_the_asks_best_first_pays_one_fee_and_consumes_depth(account):
    # A's NO bids 0.53 x 4, 0.52 x 10, 0.50 x 8 are YES asks 0.47 x 4, 0.48 x 10, 0.50 x 8
    order = account.buy(OPEN_A, "yes", 10, "0.4800", client_order_id="b1")
    assert order["status"] == "executed"
    assert (order["fill_count_fp"], order["remaining_count_fp"], order["initial_count_fp"]) == (
        "10.00",
        "0.00",
        "10.00",
    )
    assert order["taker_fill_cost_dollars"] == "4.7600"  # 4 * 0.47 + 6 * 0.48
    # one fee: ceil(7 * (4 * 0.47 * 0.53 + 6 * 0.48 * 0.52)) = ceil(17.458) = 18 cents, listed
    # as the accumulator charges it: ceil(6.97) = 7 at the first level, 18 - 7 = 11 at the next
    assert order["taker_fees_dollars"] == "0.1800"
    fills = account.fills(order_id=order["order_id"])
    assert [
        (f["count_fp"], f["yes_price_dollars"], f["no_price_dollars"], f["fee_cost"]) for f in fills
    ] == [
        ("6.00", "0.4800", "0.5200", "0.1100"),  # newest first
        ("4.00", "0.4700", "0.5300", "0.0700"),
    ]
    assert all(f["is_taker"] and f["side"] == "yes" and f["action"] == "buy" for f in fills)
    assert account.balance() == START - 476 - 18
    assert account.srv.portfolio.cash_cents == START - 476 - 18
    # the taken depth stays taken
    assert account.book(OPEN_A)["no_dollars"] == [["0.5000", "8.00"], ["0.5200", "4.00"]]
    position = account.position(OPEN_A)
    assert (
        position["position_fp"],
        position["market_exposure_dollars"],
        position["fees_paid_dollars"],
    ) == ("10.00", "4.7600", "0.1800")
    # positions are worth the YES bid: 10 * 0.45
    assert account.get("/portfolio/balance").json()["portfolio_value"] == 450


def test_sells_hit_the_bids_and_positions_net_from_yes_through_zero_to_no(account):
    account.buy(OPEN_A, "yes", 10, "0.4800")  # 4 @ 0.47, 6 @ 0.48
    cash = account.srv.portfolio.cash_cents
    sold = account.order(
        ticker=OPEN_A, side="yes", action="sell", count=5, yes_price_dollars="0.4400"
    )["order"]
    assert sold["taker_fill_cost_dollars"] == "2.2500"  # 5 @ the 0.45 YES bid
    # FIFO: closes 4 @ 0.47 and 1 @ 0.48 -> realized 2.25 - 2.36; fee ceil(7 * 5 * .45 * .55) = 9
    assert account.srv.portfolio.cash_cents == cash + 225 - 9
    p = account.position(OPEN_A)
    assert (p["position_fp"], p["realized_pnl_dollars"], p["market_exposure_dollars"]) == (
        "5.00",
        "-0.1100",
        "2.4000",
    )
    # buying 8 NO at 0.56 hits the YES bids at 0.45 (= NO 0.55): closes 5 YES, opens 3 NO
    cash = account.srv.portfolio.cash_cents
    account.buy(OPEN_A, "no", 8, "0.5600")
    assert account.srv.portfolio.cash_cents == cash + 5 * 45 - 3 * 55 - 14  # fee ceil(13.86)
    p = account.position(OPEN_A)
    assert (p["position_fp"], p["realized_pnl_dollars"], p["market_exposure_dollars"]) == (
        "-3.00",
        "-0.2600",
        "1.6500",
    )
    assert account.srv.portfolio.positions() == {OPEN_A: Decimal(-3)}
    assert account.book(OPEN_A)["yes_dollars"] == [
        ["0.4000", "10.00"],
        ["0.4200", "5.00"],
        ["0.4500", "7.00"],
    ]


def test_the_fee_follows_the_series_fee_multiplier_and_fractions_where_allowed(account):
    # C (series KXHALF, fee multiplier 0.5) has a legacy book: NO bid 60c -> YES ask 0.40
    order = account.buy(HALF_C, "yes", "2.50", "0.4000")
    # ceil(0.035 * 2.5 * 0.4 * 0.6 * 100) = ceil(2.1) = 3 cents (the full rate would be 5)
    assert (order["fill_count_fp"], order["taker_fees_dollars"]) == ("2.50", "0.0300")
    assert account.balance() == START - 100 - 3  # 2.5 * 0.40 = 1.00
    error(
        account.session.post(
            account.srv.base_url + "/portfolio/orders",
            json={
                "ticker": OPEN_A,
                "side": "yes",
                "action": "buy",
                "count_fp": "2.50",
                "yes_price_dollars": "0.4800",
            },
        ),
        400,
    )  # fmt: skip - A trades whole contracts only


def test_time_in_force_decides_what_happens_to_the_rest(account):
    rest = account.buy(OPEN_A, "yes", 10, "0.3000")
    assert (rest["status"], rest["fill_count_fp"], rest["remaining_count_fp"]) == (
        "resting",
        "0.00",
        "10.00",
    )
    assert account.balance() == START - 300  # reserved at the limit
    ioc = account.buy(OPEN_A, "yes", 30, "0.4800", time_in_force="immediate_or_cancel")
    assert (ioc["status"], ioc["fill_count_fp"], ioc["remaining_count_fp"]) == (
        "canceled",
        "14.00",
        "0.00",
    )
    before = (account.srv.portfolio.cash_cents, account.book(OPEN_A))
    body = account.order(
        409,
        ticker=OPEN_A,
        side="yes",
        action="buy",
        count=30,
        yes_price_dollars="0.5000",
        time_in_force="fill_or_kill",
    )
    assert body["code"] == "fill_or_kill_insufficient_resting_volume"
    assert (account.srv.portfolio.cash_cents, account.book(OPEN_A)) == before  # nothing happened
    fok = account.buy(OPEN_A, "yes", 8, "0.5000", time_in_force="fill_or_kill")
    assert fok["status"] == "executed"
    assert {o["status"] for o in account.orders()} == {"resting", "canceled", "executed"}
    assert [o["order_id"] for o in account.orders(status="resting")] == [rest["order_id"]]


def test_post_only_buy_max_cost_and_reduce_only(account):
    cross = {"ticker": OPEN_A, "side": "yes", "action": "buy", "count": 1, "post_only": True}
    assert account.order(400, **cross, yes_price_dollars="0.4700")["code"] == "post_only_cross"
    assert account.order(**cross, yes_price_dollars="0.4600")["order"]["status"] == "resting"
    # 10 YES up to 0.50 cost 4.76 (4 @ 0.47, 6 @ 0.48): a 4.75 budget kills the order
    budget = {
        "ticker": OPEN_A,
        "side": "yes",
        "action": "buy",
        "count": 10,
        "yes_price_dollars": "0.5000",
    }
    assert (
        account.order(409, **budget, buy_max_cost=475)["code"]
        == "fill_or_kill_insufficient_resting_volume"
    )
    assert account.order(**budget, buy_max_cost=476)["order"]["taker_fill_cost_dollars"] == "4.7600"
    sell = {
        "ticker": OPEN_A,
        "side": "yes",
        "action": "sell",
        "yes_price_dollars": "0.4000",
        "reduce_only": True,
    }
    assert "only 10" in account.order(400, **sell, count=11)["message"]
    assert account.order(**sell, count=4)["order"]["fill_count_fp"] == "4.00"
    assert account.position(OPEN_A)["position_fp"] == "6.00"


def test_cancel_zeroes_a_resting_order_and_releases_its_reserve(account):
    order = account.buy(OPEN_A, "no", 10, "0.2000")  # NO asks start at 0.55: rests
    assert account.balance() == START - 200
    r = account.session.delete(account.srv.base_url + f"/portfolio/orders/{order['order_id']}")
    assert r.status_code == 200, r.text
    assert r.json()["reduced_by_fp"] == "10.00"
    assert (r.json()["order"]["status"], r.json()["order"]["remaining_count_fp"]) == (
        "canceled",
        "0.00",
    )
    assert account.balance() == START
    assert (
        account.get(f"/portfolio/orders/{order['order_id']}").json()["order"]["status"]
        == "canceled"
    )
    error(
        account.session.delete(account.srv.base_url + f"/portfolio/orders/{order['order_id']}"), 404
    )
    error(account.get("/portfolio/orders/no-such-order"), 404)


@pytest.mark.parametrize("balance", [493, 494])
def test_the_balance_never_goes_negative(handmade, private_key, balance):
    # 10 YES up to 0.48 cost 4.76 plus 0.18 fees: 494 cents, one more than 493
    srv = start(handmade, private_key, balance=balance)
    try:
        acct = Account(srv, private_key)
        book = acct.book(OPEN_A)
        body = {
            "ticker": OPEN_A,
            "side": "yes",
            "action": "buy",
            "count": 10,
            "yes_price_dollars": "0.4800",
        }
        if balance == 494:
            acct.order(201, **body)
            assert acct.balance() == 0
            # a resting order must be covered too: 1 contract at 0.30 reserves 30 cents
            refused = acct.order(400, **{**body, "count": 1, "yes_price_dollars": "0.3000"})
        else:
            refused = acct.order(400, **body)
            assert (acct.balance(), acct.book(OPEN_A), acct.orders()) == (balance, book, [])
        assert refused["code"] == "insufficient_balance"
    finally:
        srv.stop()


def test_closed_unopened_and_unknown_markets_refuse_orders(account):
    for ticker in (CLOSED_B, LATE_D):
        body = account.order(
            400, ticker=ticker, side="yes", action="buy", count=1, yes_price_dollars="0.5000"
        )
        assert body["code"] == "market_closed" and ticker in body["message"]
    body = account.order(
        404, ticker="KXNOPE-1", side="yes", action="buy", count=1, yes_price_dollars="0.5000"
    )
    assert "KXNOPE-1" in body["message"]
    assert account.orders() == [] and account.balance() == START


BASE = {"ticker": OPEN_A, "side": "yes", "action": "buy", "count": 1, "yes_price_dollars": "0.5000"}


@pytest.mark.parametrize(
    ("change", "word"),
    [
        ({"yes_price": 50}, "exactly one"),
        ({"yes_price_dollars": None}, "exactly one"),
        ({"yes_price_dollars": "0.4750"}, "tick"),
        ({"yes_price_dollars": "1.0000"}, "between 0 and 1"),
        ({"yes_price_dollars": 0.5}, "dollar string"),
        ({"count": None}, "count"),
        ({"count_fp": "2.00"}, "do not match"),
        ({"count": 0}, "count"),
        ({"side": "maybe"}, "side"),
        ({"action": "hold"}, "action"),
        ({"ticker": ""}, "ticker"),
        ({"time_in_force": "day"}, "time_in_force"),
        ({"expiration_ts": 1}, "expiration_ts"),
        ({"post_only": True, "time_in_force": "immediate_or_cancel"}, "post_only"),
        ({"subaccount": 3}, "subaccount"),
        ({"reduce_only": True}, "reduce_only"),
    ],
)
def test_invalid_orders_are_400_naming_the_field(account, change, word):
    body = {k: v for k, v in {**BASE, **change}.items() if v is not None}
    error_body = account.order(400, **body)
    assert word in error_body["message"], error_body
    assert account.orders() == []


def test_a_duplicate_client_order_id_is_409_and_leaves_one_order(account):
    first = account.buy(OPEN_A, "yes", 2, "0.4800", client_order_id="same-key")
    cash = account.srv.portfolio.cash_cents
    body = account.order(
        409,
        ticker=OPEN_A,
        side="yes",
        action="buy",
        count=2,
        yes_price_dollars="0.4800",
        client_order_id="same-key",
    )
    assert body["code"] == "order_already_exists"
    orders = account.orders(ticker=OPEN_A)
    assert [o["order_id"] for o in orders] == [first["order_id"]]
    assert orders[0]["client_order_id"] == "same-key"
    assert account.srv.portfolio.cash_cents == cash


# --- listings ----------------------------------------------------------------------------------


def test_fills_orders_and_positions_page_through_every_item_once(account):
    ids = [account.buy(OPEN_A, "yes", 1, "0.5000")["order_id"] for _ in range(7)]
    ids.append(account.buy(HALF_C, "yes", 1, "0.4000")["order_id"])
    for limit in (1, 3, 100):
        orders = account.orders(limit=limit)
        assert [o["order_id"] for o in orders] == ids[::-1]  # newest first, each once
        fills = account.fills(limit=limit)
        assert len({f["fill_id"] for f in fills}) == len(fills) == 8
    assert len(account.fills(ticker=HALF_C)) == 1
    assert len(account.orders(ticker=OPEN_A, status="executed")) == 7
    pages = list(
        follow(
            account.session,
            account.srv.base_url + "/portfolio/positions",
            {"limit": 1},
            "market_positions",
        )
    )
    assert [[p["ticker"] for p in page] for page in pages] == [[HALF_C], [OPEN_A]]
    first = account.get("/portfolio/positions", limit=1).json()
    assert {e["event_ticker"] for e in first["event_positions"]} == {"KXHALF-E2", "KXTEST-E1"}
    later = account.get("/portfolio/positions", limit=1, cursor=first["cursor"]).json()
    assert later["event_positions"] == []
    error(account.get("/portfolio/positions", count_filter="bogus"), 400)
    error(account.get("/portfolio/orders", status="open"), 400)
