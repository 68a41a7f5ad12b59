"""Hypothesis strategies that draw JSON documents of the shapes Kalshi's OpenAPI spec defines.

The shapes are the response schemas of every endpoint the project reads, extracted from
Kalshi's official spec (v3.13) into ``tests/fixtures/openapi_shapes.json`` with descriptions
dropped (the suite runs where the spec is not at hand; ``python tests/openapi_shapes.py
PATH/TO/openapi.yaml`` regenerates the file, and a test checks it against the spec when the
spec is there). Tests drawing from them exercise what the real API sends, not what our
simulator writes: every required property, optional ones present or absent, nullable ones
sometimes null, enums, and the fixed-point dollar and count strings wherever the spec has them.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from hypothesis import strategies as st

SHAPES_PATH = Path(__file__).resolve().parent / "fixtures" / "openapi_shapes.json"
#: where the full spec lives in the team's checkout (not part of the repository)
SPEC_PATH = Path(__file__).resolve().parents[2] / "shared" / "kalshi" / "openapi.yaml"
_REF = "#/components/schemas/"
#: the response (and request) bodies of the endpoints the client, fetch and server use
ROOTS = (
    "GetSeriesResponse",
    "GetEventResponse",
    "GetEventsResponse",
    "GetMarketsResponse",
    "GetMarketResponse",
    "GetMarketOrderbookResponse",
    "GetMarketCandlesticksResponse",
    "GetMarketCandlesticksHistoricalResponse",
    "GetTradesResponse",
    "GetHistoricalCutoffResponse",
    "GetBalanceResponse",
    "GetPositionsResponse",
    "GetOrdersResponse",
    "GetOrderResponse",
    "CreateOrderRequest",
    "CreateOrderResponse",
    "CancelOrderResponse",
    "GetFillsResponse",
    "ErrorResponse",
)
_STRUCTURE = {
    "type", "properties", "required", "items", "format", "nullable", "enum", "$ref", "allOf",
    "minimum", "maximum", "minItems", "maxItems",
}  # fmt: skip


def extract(full_spec: dict[str, Any], roots: tuple[str, ...] = ROOTS) -> dict[str, Any]:
    """The schemas reachable from ``roots``, keeping only the keys that define a shape."""
    schemas = full_spec["components"]["schemas"]
    out: dict[str, Any] = {}

    def strip(node: Any) -> Any:
        if isinstance(node, list):
            return [strip(n) for n in node]
        if not isinstance(node, dict):
            return node
        kept = {}
        for key, value in node.items():
            if key == "properties":
                kept[key] = {name: strip(sub) for name, sub in value.items()}
            elif key in _STRUCTURE:
                kept[key] = strip(value)
            if key == "$ref":
                visit(value.removeprefix(_REF))
        return kept

    def visit(name: str) -> None:
        if name not in out:
            out[name] = {}
            out[name] = strip(schemas[name])

    for root in roots:
        visit(root)
    return dict(sorted(out.items()))


@cache
def shapes() -> dict[str, Any]:
    return json.loads(SHAPES_PATH.read_text(encoding="utf-8"))


def schema(name: str) -> dict[str, Any]:
    return shapes()[name]


dollars = st.integers(0, 10_000).map(lambda c: f"{c // 10_000}.{c % 10_000:04d}")
counts = st.integers(0, 10**7).map(lambda c: f"{c // 100}.{c % 100:02d}")
times = st.datetimes(
    min_value=dt.datetime(2021, 1, 1), max_value=dt.datetime(2027, 1, 1), timezones=st.just(dt.UTC)
).map(lambda t: t.isoformat().replace("+00:00", "Z"))
names = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-", min_size=1, max_size=16)


def _resolve(node: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """(schema name or None, node) with one level of $ref / allOf-of-one-ref resolved."""
    if "$ref" in node:
        name = node["$ref"].removeprefix(_REF)
        return name, {**schema(name), **{k: v for k, v in node.items() if k != "$ref"}}
    if "allOf" in node and len(node["allOf"]) == 1:
        name, inner = _resolve(node["allOf"][0])
        return name, {**inner, **{k: v for k, v in node.items() if k != "allOf"}}
    return None, node


def strategy(node: dict[str, Any] | str, depth: int = 0) -> st.SearchStrategy[Any]:
    """Documents matching a schema node (or a named component schema)."""
    if isinstance(node, str):
        node = {"$ref": _REF + node}
    name, node = _resolve(node)
    base = _base(name, node, depth)
    return st.one_of(st.none(), base) if node.get("nullable") else base


def _base(name: str | None, node: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    if name == "FixedPointDollars":
        return dollars
    if name == "FixedPointCount":
        return counts
    if name == "PriceLevelDollarsCountFp":  # [price, count], both strings
        return st.tuples(dollars, counts).map(list)
    if "enum" in node:
        return st.sampled_from([v for v in node["enum"] if v is not None])
    kind = node.get("type", "object")
    if kind == "string":
        return times if node.get("format") == "date-time" else names
    if kind == "integer":
        return st.integers(node.get("minimum", 0), node.get("maximum", 2**31))
    if kind == "number":
        return st.floats(0, 10, allow_nan=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "array":
        if depth > 4:
            return st.just([])
        return st.lists(strategy(node.get("items", {}), depth + 1), max_size=3)
    props = node.get("properties") or {}
    if depth > 5:
        return st.just({})
    required = set(node.get("required") or [])
    return st.fixed_dictionaries(
        {k: strategy(v, depth + 1) for k, v in props.items() if k in required},
        optional={k: strategy(v, depth + 1) for k, v in props.items() if k not in required},
    )


if __name__ == "__main__":
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else SPEC_PATH
    full = yaml.safe_load(source.read_text(encoding="utf-8"))
    SHAPES_PATH.parent.mkdir(exist_ok=True)
    SHAPES_PATH.write_text(json.dumps(extract(full), indent=1) + "\n", encoding="utf-8")
    print(f"wrote {SHAPES_PATH}")
