"""dvc.yaml and paths.py name the same files, and what goes to git vs the DVC cache is right;
each stage depends on the code it runs, so that editing a module re-runs what imports it."""

import ast
import dataclasses
import subprocess
from pathlib import Path

import pytest
import yaml

from kalshi_lab import paths
from kalshi_lab.params import Params

ROOT = Path(__file__).resolve().parents[1]


def stage_outs() -> dict[str, dict]:
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs: dict[str, dict] = {}
    for stage in dvc["stages"].values():
        for out in stage.get("outs", []):
            path, opts = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            outs[path] = opts
    return outs


def test_every_output_path_is_a_declared_out():
    written = {
        str(v)
        for name, v in vars(paths).items()
        if isinstance(v, Path)
        and name
        not in {
            "PARAMS",
            "DVC_YAML",
            "REPORTS",
            "PLOTS",
            "FIGURES",
            "CACHE_DIR",
            "SUMMARY",
            "RECORDED_DIR",
        }
    }
    assert written == set(stage_outs())


def test_recordings_are_the_parquet_stage_s_input_and_no_stage_s_output():
    """A recording cannot be fetched again: were it (or a directory above it) a stage's
    output, dvc repro, checkout or an experiment could replace or delete it."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    recorded = paths.RECORDED_DIR
    assert str(recorded) in dvc["stages"]["parquet"]["deps"]
    for out in stage_outs():
        assert not covers(Path(out), recorded) and not covers(recorded, Path(out)), out
    # kept in every clone (DVC refuses a missing dependency), its recordings git-ignored
    tracked = subprocess.run(
        ["git", "ls-files", str(recorded)], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert tracked == [f"{recorded}/.gitignore", f"{recorded}/README.md"]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(recorded / "orderbook_deltas" / "segments.json")],
        cwd=ROOT,
        check=False,
    )
    assert ignored.returncode == 0


def test_reports_live_in_git_and_data_in_the_cache():
    for path, opts in stage_outs().items():
        in_git = opts.get("cache") is False
        assert in_git == path.startswith("reports/"), path


def test_metrics_and_plots_refer_to_declared_outs():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    outs = set(stage_outs())
    assert set(dvc["metrics"]) <= outs
    for plot in dvc["plots"]:
        files = list(next(iter(plot.values()))["y"]) if isinstance(plot, dict) else [plot]
        assert set(files) <= outs, plot


def test_every_stage_reads_params_yaml_sections_that_exist():
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    sections = set(yaml.safe_load((ROOT / "params.yaml").read_text()))
    for name, stage in dvc["stages"].items():
        assert set(stage.get("params", [])) <= sections, name
        assert stage["cmd"] == f"python -m kalshi_lab.stages.{name}"


def test_validate_reads_every_section_so_any_override_re_runs_it_first():
    """A section validate does not list would not re-run it: a bad value there would reach
    the stage that reads it, after DVC deleted that stage's outputs."""
    dvc = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    listed = dvc["stages"]["validate"]["params"]
    assert sorted(listed) == sorted(yaml.safe_load((ROOT / "params.yaml").read_text()))
    assert sorted(listed) == sorted(f.name for f in dataclasses.fields(Params))
    assert "data/params.ok" in dvc["stages"]["fetch"]["deps"]


SRC = ROOT / "src"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]


def module_file(name: str) -> Path | None:
    """The file under src/ that defines module ``name``; None for a name that is not a module."""
    base = SRC.joinpath(*name.split("."))
    return next((p for p in (base.with_suffix(".py"), base / "__init__.py") if p.exists()), None)


def imported_files(module: str) -> set[Path]:
    """Every kalshi_lab file that ``python -m <module>`` executes, found from the imports.

    Transitive, and with the packages on the way (importing ``a.b.c`` runs ``a/__init__.py``
    and ``a/b/__init__.py``); ``from pkg import name`` counts ``pkg.name`` when it is a module.
    Imports inside functions count too: a stage may reach them.
    """
    seen: set[Path] = set()
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        if parts[0] != "kalshi_lab":
            continue
        for depth in range(1, len(parts) + 1):
            path = module_file(".".join(parts[:depth]))
            if path is None or path in seen:
                continue
            seen.add(path)
            package = parts[:depth] if path.name == "__init__.py" else parts[: depth - 1]
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Import):
                    todo += [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    anchor = package[: len(package) - node.level + 1] if node.level else []
                    base = ".".join(anchor + ([node.module] if node.module else []))
                    todo += [base] + [f"{base}.{alias.name}" for alias in node.names]
    return seen


def code_deps(stage: dict) -> list[Path]:
    return [ROOT / d for d in stage["deps"] if d.startswith("src/")]


def covers(dep: Path, file: Path) -> bool:
    return dep == file or dep in file.parents


def test_the_import_walk_follows_packages_relative_imports_and_submodules():
    fetch = {str(p.relative_to(SRC)) for p in imported_files("kalshi_lab.stages.fetch")}
    assert {
        "kalshi_lab/__init__.py",
        "kalshi_lab/stages/__init__.py",
        "kalshi_lab/stages/fetch.py",
        "kalshi_lab/stages/runner.py",  # from kalshi_lab.stages.runner import ...
        "kalshi_lab/paths.py",  # from kalshi_lab import paths
        "kalshi_lab/params.py",
        "kalshi_lab/io.py",
        "kalshi_lab/errors.py",  # through params.py
        "kalshi_lab/simulator/__init__.py",
        "kalshi_lab/data/raw_store.py",
    } <= fetch
    assert not any(p.startswith("kalshi_lab/server/") for p in fetch)


@pytest.mark.parametrize("name", list(STAGES))
def test_every_stage_depends_on_the_code_it_imports(name):
    deps = code_deps(STAGES[name])
    imported = imported_files(f"kalshi_lab.stages.{name}")
    missing = sorted(
        str(f.relative_to(ROOT)) for f in imported if not any(covers(d, f) for d in deps)
    )
    assert not missing, f"dvc.yaml: stage {name} imports these, add them to its deps: {missing}"
    unused = [str(d.relative_to(ROOT)) for d in deps if not any(covers(d, f) for f in imported)]
    assert not unused, f"dvc.yaml: stage {name} never imports these deps: {unused}"
    listed = STAGES[name]["deps"]
    assert len(listed) == len(set(listed)), f"dvc.yaml: stage {name} lists a dep twice"
