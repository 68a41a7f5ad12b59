"""dvc.yaml and paths.py name the same files, and what goes to git vs the DVC cache is right."""

from pathlib import Path

import yaml

from kalshi_lab import paths

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
        and name not in {"PARAMS", "REPORTS", "PLOTS", "FIGURES", "CACHE_DIR"}
    }
    assert written == set(stage_outs())


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
