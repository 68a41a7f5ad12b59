"""The pieces of a bot session: the local server's markets at its clock, features for "now"
equal to the pipeline's, the model check, a reconciliation that fails, the report's place.

The server serves a simulated dataset recorded after every market settled; with its clock
inside that history it must show each market as the API would have then (open markets
``active``, outcome unknown, quotes from the served book), else the bot would see no market
open at all.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa
from sklearn.linear_model import LogisticRegression

from kalshi_lab.bot import report as rep
from kalshi_lab.bot.session import BotConfig, SessionError, TradingSession
from kalshi_lab.bot.signals import (
    PREDICTION_CONTEXT,
    TrainedModel,
    features_now,
    load_model,
    predict,
    record_markets,
)
from kalshi_lab.bot.venue import VenueClock
from kalshi_lab.client import KalshiClient, KalshiSigner
from kalshi_lab.client.records import Orderbook
from kalshi_lab.data.parse import parse_raw
from kalshi_lab.data.raw_store import iter_records, raw_partitions
from kalshi_lab.errors import DataError
from kalshi_lab.execution.decision import ContractOrder
from kalshi_lab.execution.reconcile import ReconciliationError
from kalshi_lab.features import build_features, feature_columns
from kalshi_lab.features.columns import KEY_COLUMNS
from kalshi_lab.features.user import compute_user_features, user_features
from kalshi_lab.params import Params, UserFeatureParams, load_params
from kalshi_lab.server import Dataset, LocalKalshiServer, ServerConfig
from kalshi_lab.server.dataset import MarketEntry
from kalshi_lab.server.lifecycle import market_at
from server_support import write_simulated_raw

NOW = dt.datetime(2025, 1, 15, 6, tzinfo=dt.UTC)
KEY_ID = "5f0c0e1e-0000-4000-8000-00000000c10c"
SERIES = ("KXSIMA", "KXSIMB", "KXSIMC", "KXSIMD", "KXSIME")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return write_simulated_raw(tmp_path_factory.mktemp("bot_session") / "raw")


@pytest.fixture(scope="module")
def dataset(raw) -> Dataset:
    return Dataset.load(raw)


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def serve(
    dataset: Dataset,
    now: dt.datetime | None,
    key: rsa.RSAPrivateKey | None = None,
    cutoff: dt.datetime | None = None,
):
    keys = {} if key is None else {"public_key": key.public_key(), "key_id": KEY_ID}
    config = ServerConfig(rate_limit=False, now=now, cutoff=cutoff, **keys)
    return LocalKalshiServer(dataset, config)


def recorded(raw: Path) -> dict[str, dict]:
    return {
        m["ticker"]: m
        for part in raw_partitions(raw)
        for r in iter_records(part, "markets")
        for m in r["response"]["markets"]
    }


def ts(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp())


# --- the server at its clock ---------------------------------------------------------------


def test_the_server_shows_each_market_as_it_stood_at_its_clock(dataset, raw):
    docs = recorded(raw)
    now = int(NOW.timestamp())
    open_now = {t for t, m in dataset.markets.items() if m.open_ts <= now < m.close_ts}
    assert 0 < len(open_now) < len(docs)
    with serve(dataset, NOW) as srv, requests.Session() as s:
        r = s.get(f"{srv.base_url}/markets", params={"status": "open", "limit": 1000})
        assert r.headers["Date"] == "Wed, 15 Jan 2025 06:00:00 GMT"  # the clock, told
        listed = r.json()["markets"]
        assert {m["ticker"] for m in listed} == open_now
        for m in listed:  # what the market said then: trading, outcome unknown
            assert m["status"] == "active" and m["result"] == ""
            assert m["settlement_ts"] is None and m["settlement_value_dollars"] is None
            assert m["expiration_value"] == ""
            book = Orderbook.model_validate(
                s.get(f"{srv.base_url}/markets/{m['ticker']}/orderbook").json()
            )
            best_yes, best_no = book.yes[-1], book.no[-1]
            assert Decimal(m["yes_bid_dollars"]) == best_yes[0]
            assert Decimal(m["yes_ask_dollars"]) == 1 - best_no[0]
            assert Decimal(m["yes_bid_size_fp"]) == best_yes[1]
            recorded_doc = docs[m["ticker"]]
            assert recorded_doc["status"] == "finalized" and recorded_doc["result"] in ("yes", "no")
            same = {k: v for k, v in m.items() if k not in ("status", "result")}
            assert {k: recorded_doc[k] for k in ("ticker", "close_time", "open_time")} == {
                k: same[k] for k in ("ticker", "close_time", "open_time")
            }
        # settled by now: as recorded; not open yet: initialized, outcome unknown
        settled = s.get(f"{srv.base_url}/markets", params={"status": "settled"}).json()
        for m in settled["markets"]:
            assert m == docs[m["ticker"]] and ts(m["settlement_ts"]) <= now
        # nor do the filters tell a settlement still to come
        future = s.get(f"{srv.base_url}/markets", params={"min_settled_ts": now + 1}).json()
        assert future["markets"] == []

    # between the close and the settlement: closed, outcome still unknown
    m = min(dataset.markets.values(), key=lambda m: m.close_ts)
    assert m.settled_ts is not None and m.settled_ts > m.close_ts
    between = dt.datetime.fromtimestamp((m.close_ts + m.settled_ts) // 2, dt.UTC)
    with serve(dataset, between, cutoff=dt.datetime(2025, 1, 1, tzinfo=dt.UTC)) as srv:
        doc = requests.get(f"{srv.base_url}/markets/{m.ticker}").json()["market"]
        assert (doc["status"], doc["result"]) == ("closed", "")
        closed = requests.get(f"{srv.base_url}/markets", params={"status": "closed"}).json()
        assert m.ticker in {d["ticker"] for d in closed["markets"]}
        # not open yet: initialized, outcome unknown
        later = requests.get(f"{srv.base_url}/markets", params={"status": "unopened"}).json()
        assert later["markets"], "no market opens after this clock"
        for d in later["markets"]:
            assert (d["status"], d["result"]) == ("initialized", "")
            assert ts(d["open_time"]) > int(between.timestamp())


def test_by_default_the_clock_is_when_the_data_was_recorded_and_everything_is_as_recorded(
    dataset, raw
):
    docs = recorded(raw)
    with serve(dataset, None) as srv:
        assert srv.now == dataset.last_received_ts
        listed = requests.get(f"{srv.base_url}/markets", params={"limit": 1000}).json()
        archived = requests.get(f"{srv.base_url}/historical/markets", params={"limit": 1000})
        served = listed["markets"] + archived.json()["markets"]
        assert len(served) == len(docs) and all(m == docs[m["ticker"]] for m in served)


def entry(status: str, received: int, open_: int = 100, close: int = 200, settled=None):
    doc = {"ticker": "T", "status": status}
    query = {"active": "open", "initialized": "unopened", "finalized": "settled"}[status]
    return MarketEntry(doc, "T", "E", "S", query, 0, open_, close, settled, None, False, received)


def test_a_document_from_before_the_clock_moves_on_with_it_never_back():
    # observed active, the clock past the close: closed (and finalized past the settlement)
    assert market_at(entry("active", 150), 250).status == "closed"
    assert market_at(entry("active", 150, settled=300), 400).status == "finalized"
    # observed before it opened, the clock past the open: active
    assert market_at(entry("initialized", 50), 150).status == "active"
    # observed finalized: stays finalized whatever the times say (a stale status is news)
    at = market_at(entry("finalized", 150, settled=500), 150)
    assert (at.status, at.query_status, at.from_future) == ("finalized", "settled", False)
    # from the future: the times decide until the settlement, then the document
    assert market_at(entry("finalized", 900, settled=500), 150).status == "active"
    assert market_at(entry("finalized", 900, settled=500), 150).from_future
    assert market_at(entry("finalized", 900, settled=500), 600).from_future is False


# --- features and predictions for now ------------------------------------------------------


def test_features_for_now_are_the_pipeline_s_row_of_the_day(dataset, raw):
    params = load_params()
    tables = {n: t.to_pandas() for n, t in parse_raw(raw).items()}
    pipeline = build_features(
        tables["markets"], tables["candles"], tables["trades"], params.features
    )
    now = pd.Timestamp(NOW)
    with serve(dataset, NOW) as srv, KalshiClient(srv.base_url, reads_per_s=2000) as client:
        snapshot = record_markets(client, SERIES, now, params.features)
        later = pd.Timestamp("2025-02-01", tz="UTC")  # nothing is open: nothing to read
        nothing = record_markets(client, SERIES, later, params.features)
    assert nothing.open_markets == {} and features_now(nothing, params).empty
    assert snapshot.as_of == pd.Timestamp("2025-01-15", tz="UTC")
    rows = features_now(snapshot, params)
    assert len(rows) > 0 and set(rows["ticker"]) <= set(snapshot.open_markets)
    expected = (
        pipeline[(pipeline["as_of"] == snapshot.as_of) & pipeline["ticker"].isin(rows["ticker"])]
        .sort_values("ticker")
        .reset_index(drop=True)
    )
    got = rows.sort_values("ticker").reset_index(drop=True)
    columns = feature_columns(params.features)
    assert got["ticker"].tolist() == expected["ticker"].tolist()
    pd.testing.assert_frame_equal(got[columns], expected[columns])
    pd.testing.assert_frame_equal(got[PREDICTION_CONTEXT], expected[PREDICTION_CONTEXT])

    class Half:
        def predict_proba(self, x):
            return np.full((len(x), 2), 0.5)

    model = TrainedModel(Half(), "half", "settlement", columns, Path("none"))
    predictions = predict(model, rows)
    assert (predictions["prob"] == 0.5).all()
    close = rows["as_of"] + pd.to_timedelta(rows["DAYS_TO_CLOSE"], unit="D")
    assert predictions["known_close"].tolist() == close.tolist()
    assert predict(model, rows.iloc[:0]).empty


def with_user_features(params: Params, *entries: tuple[str, str], **more) -> Params:
    """``params`` with ``features.extra`` of tests/feature_examples.py's (function, column)s
    and ``more`` other features keys."""
    extra = tuple(
        UserFeatureParams(_target_=f"feature_examples.{f}", columns=[c]) for f, c in entries
    )
    features = dataclasses.replace(params.features, extra=extra, **more)
    return dataclasses.replace(params, features=features)


def test_user_features_for_now_are_the_pipeline_s(dataset, raw):
    """Computed on what a cycle records: every trade since each market opened (the pipeline's
    trades table holds them all), not only the n_lags days the built-in features read."""
    params = with_user_features(
        load_params(), ("trades_so_far", "TRADES_SO_FAR"), ("mean_mid", "MEAN_MID"), n_lags=3
    )
    tables = {n: t.to_pandas() for n, t in parse_raw(raw).items()}
    pipeline = build_features(
        tables["markets"], tables["candles"], tables["trades"], params.features
    )
    values = compute_user_features(
        user_features(params.features), tables, pipeline[list(KEY_COLUMNS)]
    )
    with serve(dataset, NOW) as srv, KalshiClient(srv.base_url, reads_per_s=2000) as client:
        snapshot = record_markets(client, SERIES, pd.Timestamp(NOW), params.features)
    rows = features_now(snapshot, params).set_index("ticker").sort_index()
    at = (pipeline["as_of"] == snapshot.as_of).to_numpy()
    expected = values[at].set_index(pipeline["ticker"][at]).loc[rows.index]
    assert len(rows) > 0 and (expected["TRADES_SO_FAR"] > 0).all()
    pd.testing.assert_frame_equal(rows[list(values.columns)], expected, check_names=False)
    # some market traded before the n_lags days the built-in features read
    lags = snapshot.as_of - pd.Timedelta(days=params.features.n_lags)
    traded = tables["trades"][tables["trades"]["ticker"].isin(rows.index)]
    assert (traded["created_time"] <= lags).any()


def test_a_user_feature_of_the_order_book_is_refused_for_now(dataset):
    params = with_user_features(load_params(), ("book_depth", "BOOK_DEPTH"))
    with serve(dataset, NOW) as srv, KalshiClient(srv.base_url, reads_per_s=2000) as client:
        snapshot = record_markets(client, SERIES, pd.Timestamp(NOW), params.features)
    with pytest.raises(DataError) as caught:
        features_now(snapshot, params)
    assert str(caught.value) == (
        "features.extra[0] (feature_examples.book_depth): kalshi-bot cannot give it the "
        "orderbook table: a cycle records no order book history, the features stage's table "
        "holds every snapshot"
    )


def test_the_model_must_fit_params_yaml(tmp_path):
    params = load_params()
    columns = feature_columns(params.features)
    with pytest.raises(DataError, match=r"live\.joblib does not exist"):
        load_model(tmp_path, params)
    fitted = LogisticRegression().fit(
        pd.DataFrame(np.random.default_rng(0).normal(size=(20, len(columns))), columns=columns),
        [0, 1] * 10,
    )
    joblib.dump(fitted, tmp_path / "live.joblib")
    meta = {"model": "logreg", "target": "settlement", "features": columns}
    (tmp_path / "model.json").write_text(json.dumps(meta))
    assert load_model(tmp_path, params).columns == columns
    (tmp_path / "model.json").write_text(json.dumps({**meta, "features": columns[:-1]}))
    with pytest.raises(DataError, match=r"another feature set .*missing \['LADDER_N_CROSSED'\]"):
        load_model(tmp_path, params)
    (tmp_path / "model.json").write_text(json.dumps({**meta, "target": "direction"}))
    with pytest.raises(DataError, match="predicts target 'direction'"):
        load_model(tmp_path, params)


# --- a session on the server ---------------------------------------------------------------


def test_a_trade_the_bot_did_not_make_fails_the_reconciliation(dataset, key, tmp_path):
    params = load_params()
    params = dataclasses.replace(params, risk=dataclasses.replace(params.risk, kill_switch=True))

    class Half:  # the kill switch refuses every buy: the bot itself trades nothing
        def predict_proba(self, x):
            return np.full((len(x), 2), 0.5)

    model = TrainedModel(Half(), "half", "settlement", feature_columns(params.features), Path())
    config = BotConfig(mode="paper", series=SERIES, once=True, report_root=tmp_path)
    with serve(dataset, NOW, key) as srv:
        signer = KalshiSigner(KEY_ID, key)
        client = KalshiClient(srv.base_url, signer=signer, reads_per_s=2000)
        started = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
        session = TradingSession(config, params, model, client, started)
        session.start()
        assert session.venue_start == pd.Timestamp(NOW)
        session.cycle()
        assert session.trader is not None and session.trader.orders == []
        assert session.trader.refused  # decided, refused by the risk limits
        # the event limit learned the structure of the events the cycle read
        opened = [m for m in dataset.markets.values() if m.trading_at(srv.now)]
        learned = {session.trader.risk.payoffs.n_states(m.event_ticker) for m in opened}
        assert 2 in learned and max(learned) > 2  # binaries have 2 states, brackets more
        # someone else trades on the account
        ticker = next(t for t, m in dataset.markets.items() if m.trading_at(srv.now))
        other = KalshiClient(srv.base_url, signer=signer, reads_per_s=2000)
        other.create_order(ticker, "yes", "buy", 2, yes_price=Decimal("0.99"))
        with pytest.raises(ReconciliationError, match=rf"{ticker}: ours nothing, exchange 2 YES"):
            session.cycle()
        closed = session.close()
    assert closed is not None and isinstance(closed.failure, ReconciliationError)
    report, path = closed.report, closed.path
    assert path == tmp_path / "paper-20260102T030405Z" / "report.json"
    assert [c["ok"] for c in report["reconcile"]] == [True, True, False, False]
    assert report["stopped"] == "trading stopped in cycle 2"
    assert "of orders the bot did not place" in report["reconcile"][2]["message"]
    assert "cash: ours" in report["reconcile"][-1]["message"]  # the exit compares cash too
    # a second session started the same second gets a folder of its own
    assert rep.new_report_dir(tmp_path, "paper", started).name == "paper-20260102T030405Z-2"

    # and a new session refuses to start on top of the position it does not know
    with serve(dataset, NOW, key) as srv:
        client = KalshiClient(srv.base_url, signer=KalshiSigner(KEY_ID, key), reads_per_s=2000)
        client.create_order(ticker, "yes", "buy", 2, yes_price=Decimal("0.99"))
        fresh = TradingSession(config, params, model, client, started)
        with pytest.raises(SessionError, match=rf"{ticker} 2 YES; .*--adopt-positions"):
            fresh.start()
        fresh.close()
        adopting = dataclasses.replace(config, adopt_positions=True)
        session = TradingSession(adopting, params, model, client, started)
        session.start()
        assert session.account is not None
        held = session.account.positions[ticker]
        assert (held.side, held.contracts) == ("yes", 2)
        assert session.account.cash_cents == srv.portfolio.balance_cents
        session.close()


def test_the_venue_clock_is_the_date_header(dataset):
    with serve(dataset, NOW) as srv, KalshiClient(srv.base_url) as client:
        clock = VenueClock(client)
        assert clock.now() == (pd.Timestamp(NOW), True)
        client.get_market(next(iter(dataset.markets)))
        assert clock.latest == pd.Timestamp(NOW)  # every answer tells it


def test_a_cycle_skips_and_logs_the_markets_of_structure_other(
    dataset, key, tmp_path, monkeypatch, caplog
):
    """Paper and live read the same signals as the backtest: a market of an event of structure
    other is not traded, and the cycle's log line counts it with the other reasons."""
    from kalshi_lab.bot import session as bot_session
    from kalshi_lab.execution.signals import OTHER_STRUCTURE

    params = load_params()

    class Sure:  # an edge on YES in every market: all would be bought
        def predict_proba(self, x):
            return np.tile([0.01, 0.99], (len(x), 1))

    model = TrainedModel(Sure(), "sure", "settlement", feature_columns(params.features), Path())
    real = bot_session.predictions_now
    other: list[str] = []

    def placed(*args):
        predictions, snapshot = real(*args)
        is_other = np.arange(len(predictions)) % 2 == 0
        other.extend(predictions["ticker"][is_other])
        structure = np.where(is_other, "other", "binary").astype(object)
        return predictions.assign(structure=structure), snapshot

    monkeypatch.setattr(bot_session, "predictions_now", placed)
    config = BotConfig(mode="paper", series=SERIES, once=True, report_root=tmp_path)
    with serve(dataset, NOW, key) as srv:
        client = KalshiClient(srv.base_url, signer=KalshiSigner(KEY_ID, key), reads_per_s=2000)
        session = TradingSession(config, params, model, client, dt.datetime.now(dt.UTC))
        session.start()
        with caplog.at_level("INFO", logger="kalshi_lab.bot"):
            session.cycle()
        session.close()
    assert len(other) >= 2
    assert session.trader is not None
    decided = {o.ticker for o in session.trader.orders + session.trader.refused}
    assert decided and not decided & set(other)
    (line,) = [
        r.getMessage() for r in caplog.records if "signals without an order" in r.getMessage()
    ]
    assert f"{len(other)} {OTHER_STRUCTURE}" in line


def test_an_order_is_logged_with_its_strategy_s_note_or_else_the_model_s_edge():
    signals = pd.DataFrame(
        {"prob": [0.70], "yes_ask": [0.60], "no_ask": [0.42], "taker_rate": [0.07]},
        index=pd.Index(["M"], name="ticker"),
    )
    order = ContractOrder("M", "E", "yes", "buy", 3, 60, pd.Timestamp("2025-03-01", tz="UTC"))
    # 0.70 - 0.60 - 0.07 x 0.6 x 0.4
    assert TradingSession._why(order, signals, Counter()) == (
        "model P(yes) 0.700 vs ask 0.60: edge +0.083 after the fee"
    )
    order.note = "ladder pair: YES M + NO N at 0.9500 a pair after fees, pays at least $1"
    assert TradingSession._why(order, signals, Counter()) == order.note
