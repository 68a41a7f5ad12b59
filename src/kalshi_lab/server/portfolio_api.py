"""The signed portfolio endpoints over a :class:`~kalshi_lab.server.portfolio.Portfolio`:
balance, positions, orders (list, get, create, cancel), fills and settlements, with the API's
query parameters and cursor pagination (newest first for orders, fills and settlements, by
ticker for positions).
"""

from __future__ import annotations

from typing import Any

from kalshi_lab.server.errors import bad_request
from kalshi_lab.server.orders import parse_order_request
from kalshi_lab.server.paging import CursorCodec, page
from kalshi_lab.server.portfolio import Portfolio
from kalshi_lab.server.query import Query
from kalshi_lab.server.routes import Reply, Request, Router, ok
from kalshi_lab.server.units import count_text

LIMIT = (100, 1000)  # (default, maximum) of orders, fills, positions and settlements
ORDER_STATUSES = ("resting", "canceled", "executed")
COUNT_FILTERS = ("position", "total_traded")


def _primary_only(q: Query) -> None:
    """The local server has one account: subaccount 0 (or none given, meaning all)."""
    sub = q.integer("subaccount", minimum=0)
    if sub not in (None, 0):
        raise bad_request(f"subaccount {sub} does not exist (only the primary account, 0)")


class PortfolioApi:
    def __init__(self, portfolio: Portfolio, cursors: CursorCodec) -> None:
        self.portfolio = portfolio
        self.cursors = cursors

    def register(self, router: Router) -> None:
        for method, template, kind, handler in (
            ("GET", "/portfolio/balance", "balance", self.balance),
            ("GET", "/portfolio/positions", "positions", self.positions),
            ("GET", "/portfolio/orders", "orders", self.orders),
            ("POST", "/portfolio/orders", "create_order", self.create_order),
            ("GET", "/portfolio/orders/{order_id}", "order", self.order),
            ("DELETE", "/portfolio/orders/{order_id}", "cancel_order", self.cancel_order),
            ("GET", "/portfolio/fills", "fills", self.fills),
            ("GET", "/portfolio/settlements", "settlements", self.settlements),
        ):
            router.add(method, template, kind, handler, signed=True)

    def _after(self, q: Query, scope: str) -> Any:
        token = q.text("cursor")
        return None if token is None else self.cursors.decode(token, scope)

    def _cursor(self, scope: str, key: Any) -> str:
        return "" if key is None else self.cursors.encode(scope, key)

    def balance(self, request: Request) -> Reply:
        _primary_only(request.query)
        return ok(self.portfolio.balance_doc())

    def positions(self, request: Request) -> Reply:
        q = request.query
        _primary_only(q)
        limit = q.limit(*LIMIT)
        count_filter = q.names("count_filter") or []
        unknown = sorted(set(count_filter) - set(COUNT_FILTERS))
        if unknown:
            raise bad_request(f"count_filter accepts {', '.join(COUNT_FILTERS)}, got {unknown}")
        scope = q.scope("positions", "ticker", "event_ticker", "count_filter")
        after = self._after(q, scope)
        markets, events = self.portfolio.position_docs(
            ticker=q.text("ticker"),
            event_ticker=q.single("event_ticker"),
            count_filter=count_filter,
        )
        items, last = page(markets, lambda item: item[0], limit, after)
        return ok(
            {
                "market_positions": [doc for _, doc in items],
                # every event position once: on the first page
                "event_positions": events if after is None else [],
                "cursor": self._cursor(scope, last),
            }
        )

    def orders(self, request: Request) -> Reply:
        q = request.query
        _primary_only(q)
        limit = q.limit(*LIMIT)
        scope = q.scope("orders", "ticker", "event_ticker", "status", "min_ts", "max_ts")
        after = self._after(q, scope)
        docs = self.portfolio.order_docs(
            ticker=q.text("ticker"),
            event_tickers=q.names("event_ticker", most=10),
            status=q.choice("status", ORDER_STATUSES),
            min_ts=q.integer("min_ts"),
            max_ts=q.integer("max_ts"),
        )
        items, last = page(docs, lambda item: item[0], limit, after)
        return ok({"orders": [doc for _, doc in items], "cursor": self._cursor(scope, last)})

    def order(self, request: Request) -> Reply:
        return ok({"order": self.portfolio.order_doc(request.params["order_id"])})

    def create_order(self, request: Request) -> Reply:
        order = self.portfolio.create_order(parse_order_request(request.body))
        return ok({"order": order}, status=201)

    def cancel_order(self, request: Request) -> Reply:
        _primary_only(request.query)
        order, reduced = self.portfolio.cancel_order(request.params["order_id"])
        return ok({"order": order, "reduced_by_fp": count_text(reduced)})

    def fills(self, request: Request) -> Reply:
        q = request.query
        _primary_only(q)
        limit = q.limit(*LIMIT)
        scope = q.scope("fills", "ticker", "order_id", "min_ts", "max_ts")
        after = self._after(q, scope)
        docs = self.portfolio.fill_docs(
            ticker=q.text("ticker"),
            order_id=q.text("order_id"),
            min_ts=q.integer("min_ts"),
            max_ts=q.integer("max_ts"),
        )
        items, last = page(docs, lambda item: item[0], limit, after)
        return ok({"fills": [doc for _, doc in items], "cursor": self._cursor(scope, last)})

    def settlements(self, request: Request) -> Reply:
        """``GetSettlementsResponse``: ticker, event_ticker (one), min_ts, max_ts, limit, cursor."""
        q = request.query
        _primary_only(q)
        limit = q.limit(*LIMIT)
        scope = q.scope("settlements", "ticker", "event_ticker", "min_ts", "max_ts")
        after = self._after(q, scope)
        docs = self.portfolio.settlement_docs(
            ticker=q.text("ticker"),
            event_ticker=q.single("event_ticker"),
            min_ts=q.integer("min_ts"),
            max_ts=q.integer("max_ts"),
        )
        items, last = page(docs, lambda item: item[0], limit, after)
        return ok({"settlements": [doc for _, doc in items], "cursor": self._cursor(scope, last)})
