"""The dashboard's data model from hand-made run folders, studies and report outputs in the
formats the project writes: values read right, every broken file named, nothing fatal."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import optuna
import pytest
import torch

from learnct.dashboard import build_dashboard
from learnct.dashboard.runs import read_run
from learnct.dashboard.setups import collect_setups
from learnct.dashboard.sweeps import collect_sweeps

CONFIG = {
    "task_name": "lgd",
    "test": True,
    "model": {
        "_target_": "learnct.methods.LearnedGradientDescent",
        "n_iter": 3,
        "checkpoint": False,
        "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.002},
        "scheduler": {"_target_": "torch.optim.lr_scheduler.CosineAnnealingLR", "eta_min": 0.0},
        "scheduler_interval": "step",
    },
    "data": {"batch_size": 4},
    "physics": {"preset": "fan_lowdose", "photons": 5000.0},  # not the preset's 1e4
}
RESULTS = (
    "method,physics,n_images,test_set,psnr,ssim,ms_per_slice,fbp_psnr,fbp_ssim,device,commit,run_dir\n"
    "LearnedGradientDescent,fan_lowdose,64,ellipses,31.5,0.88,140.0,29.6,0.82,cpu,abc1234,x\n"
    "LearnedGradientDescent,fan_lowdose,64,shepp_logan,26.25,0.85,150.0,23.3,0.84,cpu,abc1234,x\n"
)


def _checkpoint(path: Path, step: int, extra: object = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {
            "global_step": step,
            "epoch": 0,
            "state_dict": {"w": torch.zeros(3)},
            "learnct": {
                "method": "LearnedGradientDescent",
                "geometry": {"kind": "fan", "image_size": 128, "n_angles": 200, "n_detectors": 256},
                "steps_before": 500,  # started from weights trained 500 steps (init_weights)
            },
            "callbacks": {
                "ModelCheckpoint{}": {"monitor": "val/psnr", "best_model_score": torch.tensor(30.5)}
            },
            "extra": extra,
        },
        path,
    )


def _good_run(folder: Path) -> Path:
    (folder / ".hydra").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(CONFIG))
    (folder / ".hydra" / "overrides.yaml").write_text("- experiment=lgd\n- model.n_iter=3\n")
    (folder / ".hydra" / "hydra.yaml").write_text(
        "hydra:\n  sweeper:\n    study_name: lpd_wide\n"
        "  runtime:\n    choices:\n      experiment: lgd\n      hparams_search: lpd\n"
    )
    (folder / "results.csv").write_text(RESULTS)
    for version, rows in ((0, "0,9,0.5,\n0,9,,29.0\n"), (1, "0,19,0.25,\n0,19,,30.5\n")):
        metrics = folder / "csv" / f"version_{version}" / "metrics.csv"
        metrics.parent.mkdir(parents=True)
        metrics.write_text("epoch,step,train/loss_step,val/psnr\n" + rows)
    _checkpoint(folder / "checkpoints" / "last.ckpt", 20)
    (folder / "wandb" / "offline-run-20260203_040506-abc123" / "files").mkdir(parents=True)
    (folder / "wandb" / "latest-run").symlink_to("offline-run-20260203_040506-abc123")
    return folder


def test_a_complete_run_is_read_right(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    run = read_run(_good_run(logs / "lgd" / "multiruns" / "2026-02-03_04-05-06" / "7"), logs)
    assert run.problems == []
    assert (run.id, run.experiment, run.method, run.physics, run.sweep) == (
        "lgd/multiruns/2026-02-03_04-05-06/7",
        "lgd",
        "LearnedGradientDescent",
        "fan_lowdose, photons 5000.0",  # another dose than the preset's: named, not hidden
        "lpd_wide",
    )
    assert run.date == "2026-02-03 04:05:06" and run.commit == "abc1234"
    assert run.hparams == {"n_iter": 3, "lr": 0.002, "batch": 4, "photons": 5000.0}
    assert run.overrides == ["experiment=lgd", "model.n_iter=3"]
    assert [(t["test_set"], t["psnr"], t["n_images"]) for t in run.tests] == [
        ("ellipses", 31.5, 64),
        ("shepp_logan", 26.25, 64),
    ]
    # a resumed run: both CSV versions, in order, at the steps done (Lightning logs 9 and 19)
    assert run.curves["val/psnr"] == {"step": [10, 20], "value": [29.0, 30.5]}
    assert run.val_psnr_best == 30.5 and run.steps == 20
    (ckpt,) = run.checkpoints
    assert (ckpt["global_step"], ckpt["trained_steps"], ckpt["method"], ckpt["best_score"]) == (
        20,
        520,
        "LearnedGradientDescent",
        30.5,
    )
    assert ckpt["geometry"] == "kind fan, image_size 128, n_angles 200, n_detectors 256"
    assert run.wandb == ["wandb/offline-run-20260203_040506-abc123"]  # for wandb sync


def test_a_run_at_its_presets_physics_shows_the_preset_and_other_physics_are_named(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    folder = _good_run(logs / "lgd" / "runs" / "2026-02-03_04-05-06")
    physics = {
        "preset": "fan_lowdose",
        "photons": None,
        "image_size": None,
        "n_angles": 60,
        "n_detectors": None,
    }
    (folder / "config.json").write_text(json.dumps({**CONFIG, "physics": physics}))
    assert read_run(folder, logs).physics == "fan_lowdose, n_angles 60"
    (folder / "config.json").write_text(
        json.dumps({**CONFIG, "physics": {**physics, "n_angles": None}})
    )
    run = read_run(folder, logs)
    assert run.physics == "fan_lowdose" and run.problems == []
    (folder / "config.json").write_text(
        json.dumps({**CONFIG, "physics": {**physics, "n_angles": 0}})
    )
    run = read_run(folder, logs)
    assert run.physics == "fan_lowdose" and "physics cannot be rebuilt" in run.problems[0]


def test_steps_are_the_checkpoints_where_it_is_past_the_last_logged_step(tmp_path: Path) -> None:
    folder = _good_run(tmp_path / "logs" / "lgd" / "runs" / "2026-02-03_04-05-06")
    _checkpoint(folder / "checkpoints" / "last.ckpt", 27)  # stopped between two log steps
    assert read_run(folder, tmp_path / "logs").steps == 27


def test_numbers_are_rounded_paths_relative_and_panels_listed_by_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dashboard's data: PSNR to 2 decimals, SSIM to 4, ms per slice to 1, other floats to
    5 significant digits; the run folder relative to the repository (the working folder); the
    validation panels a run saved, by step, each copied beside the page."""
    monkeypatch.chdir(tmp_path)
    folder = _good_run(tmp_path / "logs" / "lgd" / "runs" / "2026-02-03_04-05-06")
    (folder / "results.csv").write_text(
        RESULTS.splitlines()[0] + "\n"
        "LearnedGradientDescent,fan_lowdose,64,ellipses,31.512345,0.881234,140.04,29.6049,"
        "0.8212345,cpu,abc1234,x\n"
    )
    config = {**CONFIG, "model": {**CONFIG["model"], "lam": 14.071474057444286}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "csv" / "version_1" / "metrics.csv").write_text(
        "epoch,step,train/loss_step,val/psnr\n0,19,0.123456789,\n0,19,,30.56789\n"
    )
    # panels: saved into the run folder (every logger), and by older runs under csv/
    for png in (
        "panels/epoch0001_step0000020.png",
        "csv/version_0/panels/epoch0000_step0000010.png",
    ):
        (folder / png).parent.mkdir(parents=True, exist_ok=True)
        (folder / png).write_bytes(b"\x89PNG " + png.encode())
    (folder / "panels" / "notes.png").write_bytes(b"\x89PNG")  # not a panel: left out

    run = read_run(folder, tmp_path / "logs")
    assert run.path == "logs/lgd/runs/2026-02-03_04-05-06"
    (test,) = run.tests
    assert (test["psnr"], test["ssim"], test["ms_per_slice"]) == (31.51, 0.8812, 140.0)
    assert (test["fbp_psnr"], test["fbp_ssim"]) == (29.6, 0.8212)
    assert run.hparams["lam"] == 14.071
    assert run.curves["train/loss_step"]["value"] == [0.5, 0.12346]
    assert run.val_psnr_best == 30.57
    assert [(p["step"], p["epoch"]) for p in run.panels] == [(10, 0), (20, 1)]

    build_dashboard(Path("logs"), Path("experiments"), Path("out"))
    text = (tmp_path / "out" / "assets" / "data.js").read_text()
    data = json.loads(text.removeprefix("window.LEARNCT_DASHBOARD = ").rstrip().rstrip(";"))
    assert (data["logs"], data["experiments"]) == ("logs", "experiments")
    (item,) = data["runs"]
    assert item["path"] == "logs/lgd/runs/2026-02-03_04-05-06"
    assert [p["step"] for p in item["panels"]] == [10, 20]
    for panel, png in zip(
        item["panels"], ("epoch0000_step0000010", "epoch0001_step0000020"), strict=True
    ):
        assert (tmp_path / "out" / panel["src"]).read_bytes().endswith(png.encode() + b".png")
    assert str(tmp_path) not in text  # no absolute path in the data


def test_broken_files_are_named_and_never_fatal(tmp_path: Path) -> None:
    logs, experiments = tmp_path / "logs", tmp_path / "experiments"
    bad = logs / "lgd" / "runs" / "2026-02-01_00-00-00"
    (bad / ".hydra").mkdir(parents=True)
    (bad / ".hydra" / "config.yaml").write_text("model: [unclosed\n")
    (bad / "results.csv").write_text("method,physics\nLearnedGradientDescent,fan_lowdose\n")
    (bad / "csv" / "version_0").mkdir(parents=True)
    (bad / "csv" / "version_0" / "metrics.csv").write_text("epoch,step,val/psnr\n0,1,abc\n")
    (bad / "checkpoints").mkdir()
    (bad / "checkpoints" / "cut.ckpt").write_bytes(b"PK\x03\x04 truncated")
    _checkpoint(bad / "checkpoints" / "pickled.ckpt", 5, extra=argparse.Namespace(a=1))
    lonely = logs / "tv" / "runs" / "2026-02-02_00-00-00"
    lonely.mkdir(parents=True)
    (logs / "tv" / "optuna_x.db").write_text("not sqlite")
    odd = logs / "tv" / "runs" / "2026-02-03_00-00-00" / ".hydra"  # YAML that JSON lacks
    odd.mkdir(parents=True)
    (odd / "config.yaml").write_text(
        "task_name: tv\ntest: false\ntags: [2026-01-01]\n"
        "model: {_target_: learnct.methods.TV, lam: .nan, iterations: 300}\n"
    )
    listless = logs / "tv" / "runs" / "2026-02-04_00-00-00" / ".hydra"
    listless.mkdir(parents=True)
    (listless / "config.yaml").write_text("task_name: tv\n")
    (listless / "overrides.yaml").write_text("experiment: tv\n")  # a mapping, not a list
    (experiments / "fan_lowdose").mkdir(parents=True)
    (experiments / "fan_lowdose" / "results.csv").write_text("method,psnr\nFBP,29.6,extra\n")

    summary = build_dashboard(logs, experiments, tmp_path / "out")
    problems = "\n".join(summary.problems)
    for expected in (
        "lgd/runs/2026-02-01_00-00-00: config.yaml: unreadable YAML",
        "tv/runs/2026-02-04_00-00-00: overrides.yaml: unreadable (not a list of overrides)",
        "lgd/runs/2026-02-01_00-00-00: results.csv: unreadable (no rows or missing columns "
        "['psnr', 'ssim', 'test_set'])",
        "lgd/runs/2026-02-01_00-00-00: unreadable metrics: csv/version_0/metrics.csv: line 2 "
        "column val/psnr: 'abc' is not a number",
        "lgd/runs/2026-02-01_00-00-00: checkpoints/cut.ckpt: truncated or corrupt",
        "lgd/runs/2026-02-01_00-00-00: checkpoints/pickled.ckpt: holds a pickled "
        "argparse.Namespace, which a weights-only load refuses",
        "tv/runs/2026-02-02_00-00-00: no .hydra/config.yaml or config.json",
        "tv/optuna_x.db: not a readable Optuna study database",
        "experiments/fan_lowdose: results.csv: unreadable (line 2 has a different number",
    ):
        assert expected in problems
    assert (summary.n_runs, summary.n_sweeps, summary.n_setups) == (4, 0, 1)
    assert not any("2026-02-03" in p for p in summary.problems)
    assert summary.index.read_text().startswith("<!doctype html>")
    data = (tmp_path / "out" / "assets" / "data.js").read_text()
    assert data.startswith("window.LEARNCT_DASHBOARD = {") and "NaN" not in data
    assert '"tags":["2026-01-01"]' in data and '"lam":null' in data


def _study(storage: str, name: str, n_trials: int) -> None:
    study = optuna.create_study(study_name=name, storage=storage, direction="maximize")
    study.optimize(
        lambda t: (
            30
            - abs(t.suggest_float("lam", 2, 200, log=True) - 20) / 10
            + (t.suggest_categorical("iterations", [100, 300]) == 300)
        ),
        n_trials=n_trials,
    )


def test_sweeps_carry_optunas_figures(tmp_path: Path) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (tmp_path / "tv").mkdir()
    storage = f"sqlite:///{tmp_path / 'tv' / 'optuna_tv_lambda.db'}"
    _study(storage, "tv_lambda", 4)
    _study(storage, "one_trial", 1)
    sweeps, problems = collect_sweeps(tmp_path)
    assert problems == []
    by_name = {s.study: s for s in sweeps}
    full, single = by_name["tv_lambda"], by_name["one_trial"]
    assert (full.n_complete, full.direction, full.storage) == (
        4,
        "maximize",
        "tv/optuna_tv_lambda.db",
    )
    assert full.best_value == max(t["value"] for t in full.trials)
    assert set(full.figures) == {"history", "importances", "parallel"} and not full.problems
    importances = full.figures["importances"]["data"][0]
    assert sorted(importances["y"]) == ["iterations", "lam"]  # one bar per parameter
    assert set(single.figures) == {"history", "parallel"}
    assert single.problems == ["importances: needs at least 2 completed trials"]


def test_setups_list_report_tables_and_figures(tmp_path: Path) -> None:
    folder = tmp_path / "fan_lowdose"
    folder.mkdir()
    (folder / "results.csv").write_text("method,psnr\nFBP,29.6\n")
    (folder / "dose_curve.csv").write_text("method,photons,psnr\nFBP,1000,25.0\nFBP,10000,29.6\n")
    for name in ("dose_curve.png", "comparison.png", "zz_extra.png"):
        (folder / name).write_bytes(b"\x89PNG")
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "fbp_cpu.md").write_text("# not a setup\n")
    (setup,) = collect_setups(tmp_path)
    assert setup.name == "fan_lowdose" and not setup.problems
    assert setup.tables["dose_curve.csv"]["rows"] == [
        ["FBP", "1000", "25.0"],
        ["FBP", "10000", "29.6"],
    ]
    assert list(setup.images) == ["comparison.png", "dose_curve.png", "zz_extra.png"]


def test_an_empty_logs_folder_still_builds(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    summary = build_dashboard(tmp_path / "logs", tmp_path / "none", tmp_path / "out")
    assert (summary.n_runs, summary.n_sweeps, summary.n_setups, summary.problems) == (0, 0, 0, [])
    with pytest.raises(FileNotFoundError, match="train something first"):
        build_dashboard(tmp_path / "nope", tmp_path / "none", tmp_path / "out")
