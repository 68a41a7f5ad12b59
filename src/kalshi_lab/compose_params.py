"""Compose conf/ into params.yaml exactly as `dvc exp run` does, for users of plain `dvc repro`.

``python -m kalshi_lab.compose_params [override ...]`` calls DVC's own
``compose_and_dump`` (Hydra compose, resolve, dump), so the file is byte-for-byte what
``dvc exp run`` would write; it is validated as the validate stage does before it replaces
params.yaml, so an invalid override leaves the old file in place. Overrides use Hydra's grammar,
e.g. ``model=logreg strategy.kelly_fraction=0.25``; an override Hydra refuses (an unknown key,
a config group option that does not exist, a syntax error) is one ``error:`` line and exit
code 2, as a bad value is.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml
from dvc.utils.hydra import compose_and_dump
from hydra.errors import HydraException
from omegaconf.errors import OmegaConfBaseException

from kalshi_lab.errors import KalshiLabError, ParamError
from kalshi_lab.io import StagedOutputs
from kalshi_lab.params import params_from_dict
from kalshi_lab.paths import PARAMS
from kalshi_lab.stages.validate import check

CONF_DIR = Path("conf")


def compose_text(overrides: list[str], conf_dir: Path = CONF_DIR) -> str:
    """The YAML text DVC would write to params.yaml for these overrides.

    Hydra's and OmegaConf's errors (bad overrides, missing group options, broken
    interpolations) become a ParamError of one line.
    """
    conf_dir = Path(conf_dir).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        try:
            compose_and_dump(out, str(conf_dir), None, "config", str(conf_dir.parent), overrides)
        except (HydraException, OmegaConfBaseException) as exc:
            raise ParamError(one_line(exc)) from None
        return out.read_text(encoding="utf-8")


def one_line(exc: BaseException) -> str:
    """Hydra's message, and its cause's first line, on one line; the config search path and
    Hydra's tab-indented lists (the options of a group) are folded in or left out."""
    text = str(exc).split("\nConfig search path:")[0]
    text = re.sub(r"\n\t", ", ", re.sub(r":\n\t", ": ", text))
    if exc.__cause__ is not None:
        text += "\n" + str(exc.__cause__).splitlines()[0]
    return "; ".join(line.strip().rstrip(".") for line in text.splitlines() if line.strip())


def compose(overrides: list[str], conf_dir: Path = CONF_DIR) -> dict[str, Any]:
    """The composed config as the plain dict a stage reads from params.yaml."""
    return yaml.safe_load(compose_text(overrides, conf_dir))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=logreg")
    args = parser.parse_args(argv)
    try:
        text = compose_text(args.overrides)
        check(params_from_dict(yaml.safe_load(text)))
    except KalshiLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with StagedOutputs() as out:
        out.write_text(PARAMS, text)
    print(f"wrote {PARAMS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
