"""What README.md says can be imported, can be imported from where it says.

Read from the README itself, so a class it starts to name, or one a refactoring moves, is
checked without editing this file:

* every ``from kalshi_lab... import ...`` line of its code blocks;
* every class the Layout table's ``src/kalshi_lab/`` row lists for ``execution/``, and every
  class named in the prose of "The trading bot" section, which says "All of it is in
  ``kalshi_lab.execution``";
* every dotted ``kalshi_lab.x.y`` name in backticks (a module, or a name in one).
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
#: a class name in backticks, as the README writes one: `EdgeBasedStrategy`, `EdgeBasedStrategy(...)`
_CLASS = re.compile(r"`([A-Z][a-z]+[A-Z]\w*)[`(.]")


def _prose(text: str) -> str:
    """``text`` without its fenced code blocks (a user's example classes live there)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


def _section(title: str) -> str:
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", README, flags=re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def _import_lines() -> list[tuple[str, str]]:
    """(module, name) of every ``from kalshi_lab... import a, b`` line, parentheses included."""
    found = []
    pattern = r"^\s*from (kalshi_lab[\w.]*) import \(?([\w\s,]+?)\)?$"
    for module, names in re.findall(pattern, README, flags=re.M):
        found += [(module, n.strip()) for n in names.split(",") if n.strip()]
    return found


def _layout_execution_classes() -> list[str]:
    (row,) = [line for line in README.splitlines() if line.startswith("| `src/kalshi_lab/` |")]
    listed = row.split("`execution/` (", 1)[1].split(")", 1)[0]
    return _CLASS.findall(listed)


def _trading_bot_classes() -> list[str]:
    return _CLASS.findall(
        _prose(_section("The trading bot: strategy, risk, executor, exchange, account"))
    )


def _dotted_names() -> list[str]:
    return sorted(set(re.findall(r"`(kalshi_lab(?:\.\w+)+)`", README)))


def test_the_readme_is_read():
    """The parsers find what the README holds today: an empty parse would pass everything."""
    assert ("kalshi_lab", "KalshiClient") in _import_lines()
    assert ("kalshi_lab.execution", "PredictionMarketDecision") in _import_lines()
    assert {"LiveKalshiExchange", "KalshiAccount", "NestedKalshiExecutor"} <= set(
        _layout_execution_classes()
    )
    assert {"BasePositionSizer", "LadderArbitrageStrategy"} <= set(_trading_bot_classes())
    assert "BuyCheapYes" not in _trading_bot_classes()  # a user's, in a code block
    assert "kalshi_lab.models.MarketAnchoredLogit" in _dotted_names()


@pytest.mark.parametrize(
    ("module", "name"), [pytest.param(m, n, id=f"{m}.{n}") for m, n in _import_lines()]
)
def test_every_import_line_of_the_readme_imports(module, name):
    assert hasattr(importlib.import_module(module), name), f"from {module} import {name}"


@pytest.mark.parametrize("name", sorted({*_layout_execution_classes(), *_trading_bot_classes()}))
def test_every_class_the_readme_puts_in_kalshi_lab_execution_is_there(name):
    execution = importlib.import_module("kalshi_lab.execution")
    assert isinstance(getattr(execution, name, None), type), (
        f"from kalshi_lab.execution import {name}"
    )
    assert name in execution.__all__


@pytest.mark.parametrize("dotted", _dotted_names())
def test_every_dotted_name_the_readme_gives_resolves(dotted):
    try:
        importlib.import_module(dotted)
    except ModuleNotFoundError:
        module, _, name = dotted.rpartition(".")
        assert hasattr(importlib.import_module(module), name), dotted


def test_the_execution_package_leaves_the_http_client_unimported_until_asked():
    """The live exchange is exported lazily: the backtest stage starts without requests and
    cryptography (about 0.12 s)."""
    code = (
        "import sys, kalshi_lab.execution as e\n"
        "assert 'kalshi_lab.client' not in sys.modules\n"
        "assert e.LiveKalshiExchange.__module__ == 'kalshi_lab.execution.live'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
