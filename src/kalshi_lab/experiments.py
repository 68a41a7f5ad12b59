"""The experiments table: every experiment's headline metrics and what was overridden to get it.

``dvc exp show`` gives one column per parameter that differs. A config-group swap changes a whole
section (``strategy=directional`` alone changes nine ``strategy.*`` values, ``data=kalshi`` about
twenty ``data.*`` ones), so after the README's own experiments its table no longer fits a terminal
and DVC cuts columns, metrics included, to ``…``. This table keeps the metrics of DVC's metrics
files as columns and writes each experiment's parameters as what a user passes to
``dvc exp run -S`` to get them again: the group options that are not conf/'s defaults
(``model=logreg``) and the values that differ from what those options compose to
(``strategy.kelly_fraction=0.25``). That column wraps (or goes under
each row in a narrow terminal), so the table is no wider than the terminal once the metric
columns fit.

It reads ``dvc exp show --json`` (DVC's documented output) and composes conf/ with Hydra, as
``dvc exp run`` does; overrides are found against the current conf/, so for an experiment of an
older commit whose conf/ differed they also show what has changed in conf/ since.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra import compose, initialize_config_dir
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from omegaconf import OmegaConf

from kalshi_lab.errors import KalshiLabError

#: what a missing or failed value shows, as in DVC's own table
MISSING = "-"
_OVERRIDES = OverridesParser.create()
#: below this many characters left beside the metrics, the overrides go on lines of their own
NARROWEST = 30


@dataclass(frozen=True)
class Experiment:
    """One row: a baseline commit (or the workspace) or an experiment derived from it."""

    label: str  #: the name column, tree prefix included
    metrics: dict[str, Any]  #: metric name -> value (None where the run produced none)
    params: dict[str, Any]  #: params.yaml flattened to dotted keys
    state: str | None = None  #: DVC's executor state of a queued, running or failed experiment


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings to dotted keys; lists stay values (Hydra overrides them whole)."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def read_dvc_experiments(num: int = 1, repo: Path = Path(".")) -> list[Experiment]:
    """The rows ``dvc exp show --json -n NUM`` lists, in its order."""
    proc = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "show", "--json", "-n", str(num)],
        cwd=repo,
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise KalshiLabError(f"dvc exp show failed: {last.removeprefix('ERROR: ')}")
    return list(experiments_from_json(json.loads(proc.stdout)))


def experiments_from_json(baselines: Iterable[Mapping[str, Any]]) -> Iterator[Experiment]:
    """Rows from DVC's JSON: each baseline, then its experiments with DVC's tree prefixes."""
    for baseline in baselines:
        rev = str(baseline["rev"])
        name = baseline.get("name") or (rev if rev == "workspace" else rev[:7])
        yield _row(name, baseline)
        exps = baseline.get("experiments") or []
        for i, exp in enumerate(exps):
            head = exp["revs"][0]
            branch = "└──" if i == len(exps) - 1 else "├──"
            label = f"{branch} {str(head['rev'])[:7]} [{exp.get('name') or head.get('name')}]"
            yield _row(label, head, exp.get("executor") or head.get("executor"))


def _row(
    label: str, rev: Mapping[str, Any], executor: Mapping[str, Any] | None = None
) -> Experiment:
    data = rev.get("data") or {}
    metrics: dict[str, Any] = {}
    for file in (data.get("metrics") or {}).values():
        metrics.update(flatten((file or {}).get("data") or {}))
    params = ((data.get("params") or {}).get("params.yaml") or {}).get("data") or {}
    state = (executor or {}).get("state")
    return Experiment(label, metrics, flatten(params), state if state != "success" else None)


class Overrides:
    """A row's parameters as Hydra overrides against conf/: group options, then values.

    Each config group's option is the one whose composed section differs least from the row's
    section; the values are those that differ from what the chosen options compose to. Every
    composition is cached, so a table of many experiments composes each option once.
    """

    def __init__(self, conf_dir: Path = Path("conf")) -> None:
        self.conf_dir = Path(conf_dir).resolve()
        if not (self.conf_dir / "config.yaml").is_file():
            raise KalshiLabError(f"{conf_dir}/config.yaml not found: run it in the project's root")
        self.groups = sorted(p.name for p in self.conf_dir.iterdir() if p.is_dir())
        self._cache: dict[tuple[str, ...], dict[str, Any]] = {}
        defaults = self.composed(())
        #: conf/config.yaml's option of each group, as the rows are told apart from it
        self.default_options = {group: self.choose(group, defaults) for group in self.groups}

    def composed(self, overrides: tuple[str, ...], resolve: bool = True) -> dict[str, Any]:
        """params.yaml, flattened, as ``dvc exp run -S`` composes it for these overrides
        (``resolve=False``: interpolations such as ``${model.target}`` left as written)."""
        key = (*overrides, f"resolve={resolve}")
        if key not in self._cache:
            with initialize_config_dir(str(self.conf_dir), version_base=None):
                cfg = compose(config_name="config", overrides=list(overrides))
            self._cache[key] = flatten(OmegaConf.to_container(cfg, resolve=resolve))
        return self._cache[key]

    def options(self, group: str) -> list[str]:
        return sorted(p.stem for p in (self.conf_dir / group).glob("*.yaml"))

    def choose(self, group: str, params: Mapping[str, Any]) -> str:
        """The group's option closest to the row's section (fewest differing keys)."""
        prefix = f"{group}."

        def distance(option: str) -> int:
            ours = {
                k: v
                for k, v in self.composed((f"{group}={option}",)).items()
                if k.startswith(prefix)
            }
            theirs = {k: v for k, v in params.items() if k.startswith(prefix)}
            return sum(
                ours.get(k, _ABSENT) != theirs.get(k, _ABSENT) for k in ours.keys() | theirs.keys()
            )

        return min(self.options(group), key=lambda option: (distance(option), option))

    def of(self, params: Mapping[str, Any]) -> list[str]:
        """The overrides that compose to ``params``: non-default group options, then values.

        A value that follows an interpolation (``strategy.target: ${model.target}``) is left out
        when the other overrides already give it."""
        if not params:
            return []
        groups = tuple(
            f"{group}={option}"
            for group in self.groups
            if (option := self.choose(group, params)) != self.default_options[group]
        )
        written = self.composed(groups, resolve=False)
        differing = self._differing(params, self.composed(groups))
        direct = {k: v for k, v in differing.items() if not _interpolation(written.get(k))}
        try:
            implied = self._differing(params, self.composed((*groups, *_assignments(direct))))
        except HydraException:  # a value today's conf/ cannot take: list the differences as found
            return [*groups, *_assignments(differing)]
        return [*groups, *_assignments({**direct, **implied})]

    @staticmethod
    def _differing(params: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, Any]:
        """Keys whose value in ``params`` is not ``base``'s (``_ABSENT``: deleted)."""
        return {
            key: params.get(key, _ABSENT)
            for key in sorted(base.keys() | params.keys())
            if params.get(key, _ABSENT) != base.get(key, _ABSENT)
        }


def _interpolation(value: Any) -> bool:
    return isinstance(value, str) and "${" in value


def _assignments(values: Mapping[str, Any]) -> list[str]:
    """Hydra overrides setting these values (``~key`` deletes a key the row does not have)."""
    return [f"~{k}" if v is _ABSENT else f"{k}={_hydra_value(v)}" for k, v in values.items()]


_ABSENT = object()


def _hydra_value(value: Any) -> str:
    """A value as one writes it in a ``-S`` override: bare where Hydra's grammar reads the bare
    text back as the same value (``0.25``, ``[KXA,KXB]``, a URL), otherwise with its strings
    quoted (a string ``true``, a space, a comma)."""
    bare = _written(value, quote=False)
    if not re.search(r"\s", bare):
        try:
            if _OVERRIDES.parse_override(f"k={bare}").value() == value:
                return bare
        except HydraException:
            pass
    return _written(value, quote=True)


def _written(value: Any, quote: bool) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ",".join(_written(v, quote) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{k}:{_written(v, quote)}" for k, v in value.items()) + "}"
    if quote and isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    return str(value)


def _metric_text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, float):
        return format(value, ".5g")
    return str(value)


def render(rows: list[Experiment], overrides: Overrides, width: int) -> str:
    """The table, at most ``width`` characters wide: name, one column per metric (in the order
    DVC lists them), and the overrides, wrapped to the width left."""
    metrics: list[str] = []
    for row in rows:
        metrics += [m for m in row.metrics if m not in metrics]
    names = [row.label + (f" ({row.state})" if row.state else "") for row in rows]
    values = [[_metric_text(row.metrics.get(m)) for m in metrics] for row in rows]
    widths = [max(len(n) for n in ["Experiment", *names])]
    widths += [max(len(m), *(len(v[i]) for v in values)) for i, m in enumerate(metrics)]
    room = width - sum(widths) - 2 * len(widths)
    below = room < NARROWEST  # too narrow beside the metrics: the overrides go under each row
    if below:
        room = width - 4
    title = "overrides (dvc exp run -S)"
    lines = [_line(["Experiment", *metrics], widths, "" if below else title)]
    for row, name, numbers in zip(rows, names, values, strict=True):
        text = " ".join(overrides.of(row.params)) or MISSING
        wrapped = textwrap.wrap(text, room, break_on_hyphens=False)
        if below:
            lines.append(_line([name, *numbers], widths, ""))
            lines += [f"    {line}" for line in wrapped]
            continue
        lines.append(_line([name, *numbers], widths, wrapped[0]))
        lines += [_line([""] * len(widths), widths, line) for line in wrapped[1:]]
    rule = "─" * max(len(line) for line in lines)
    return "\n".join([rule, lines[0], rule, *lines[1:], rule])


def _line(cells: list[str], widths: list[int], last: str) -> str:
    """Names left-aligned, numbers right-aligned, as DVC aligns them."""
    first, *numbers = cells
    parts = [first.ljust(widths[0])] + [
        n.rjust(w) for n, w in zip(numbers, widths[1:], strict=True)
    ]
    return ("  ".join(parts) + "  " + last).rstrip()
