"""The seed fixes everything: two CPU runs with the same seed and config give identical
metrics; the test data are identical across methods (hash in every results row); results
record the commit, the config and the library versions."""

from __future__ import annotations

import csv
import json

import lightning
import pytest
import torch

from conftest import TINY_LGD
from learnct.evaluation import simulate_test_sets
from learnct.reporting.table import collect_results, write_report
from learnct.run import build_physics
from learnct.run.build import build_datamodule
from learnct.run.testset_hash import batches_hash

SHORT = ["trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.deterministic=true"]


def _val_metrics(folder) -> list[dict[str, str]]:
    (metrics,) = folder.glob("csv/version_*/metrics.csv")
    with open(metrics) as fh:
        return [r for r in csv.DictReader(fh) if r.get("val/psnr")]


@pytest.mark.slow
def test_same_seed_same_numbers_and_test_hash_across_runs_and_methods(
    tmp_path, compose_config, run_config
):
    a = run_config(compose_config("train", [*TINY_LGD, *SHORT], tmp_path / "a"))
    b = run_config(compose_config("train", [*TINY_LGD, *SHORT], tmp_path / "b"))
    assert _val_metrics(tmp_path / "a") == _val_metrics(tmp_path / "b")  # bit for bit
    assert a.objective == b.objective
    for ra, rb in zip(a.rows, b.rows, strict=True):
        assert (ra["psnr"], ra["ssim"], ra["test_hash"]) == (
            rb["psnr"],
            rb["ssim"],
            rb["test_hash"],
        )

    other_seed = run_config(
        compose_config("train", [*TINY_LGD, *SHORT, "seed=1", "test=false"], tmp_path / "c")
    )
    assert other_seed.objective != a.objective  # the seed does change the numbers
    fbp = run_config(
        compose_config(
            "train", ["experiment=fbp", *TINY_LGD[2:], "data.eval_batch_size=1"], tmp_path / "d"
        )
    )
    hashes = [r["test_hash"] for r in a.rows]
    assert [r["test_hash"] for r in fbp.rows] == hashes  # same test data for every method
    assert len(set(hashes)) == 2 and all(len(h) == 16 for h in hashes)  # one per test set

    # the same data simulated outside a Trainer (the real-CT table) hash the same
    cfg = compose_config("train", [*TINY_LGD, *SHORT], tmp_path / "e")
    preset, operator = build_physics(cfg)
    datamodule = build_datamodule(cfg, preset, operator)
    datamodule.setup("test")
    simulated = simulate_test_sets(datamodule)
    assert {r["test_set"]: r["test_hash"] for r in a.rows} == {
        name: batches_hash(batches) for name, batches in simulated.items()
    }


def test_results_record_commit_config_and_versions(
    tmp_path, monkeypatch, compose_config, run_config
):
    import learnct.run.pipeline

    # the commit is the one the run started with, not one made while it trained
    answers = iter(["abc1234", "def5678-dirty"])
    monkeypatch.setattr(learnct.run.pipeline, "git_commit", lambda: next(answers, "def5678-dirty"))
    result = run_config(compose_config("train", ["experiment=fbp", *TINY_LGD[2:]], tmp_path))
    assert {r["commit"] for r in result.rows} == {"abc1234"}
    with open(tmp_path / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["test_hash"] for r in rows] == [r["test_hash"] for r in result.rows]
    for row in rows:
        assert row["torch_version"] == torch.__version__
        assert row["lightning_version"] == lightning.__version__
        assert row["commit"] == "abc1234"
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"]["_target_"] == "learnct.methods.FBP"
    assert config["data"]["test_size"] == 2
    assert config["provenance"]["commit"] == rows[0]["commit"]
    assert config["provenance"]["torch_version"] == torch.__version__

    # make report carries them into experiments/<setup>/results.csv
    gathered, problems = collect_results(tmp_path, "fan_lowdose")
    assert not problems
    csv_path, _ = write_report(gathered, "fan_lowdose", tmp_path / "experiments")
    with open(csv_path) as fh:
        reported = list(csv.DictReader(fh))
    for key in ("commit", "run_dir", "test_hash", "torch_version", "lightning_version"):
        assert sorted(r[key] for r in reported) == sorted(r[key] for r in rows), key


def test_git_commit_names_head_and_uncommitted_changes(tmp_path):
    import subprocess

    from learnct.run.provenance import git_commit

    assert git_commit(tmp_path) == "unknown"  # not a checkout
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-C", str(tmp_path)]
    subprocess.run([*git, "init", "-q"], check=True)
    (tmp_path / "f.txt").write_text("a")
    subprocess.run([*git, "add", "f.txt"], check=True)
    subprocess.run([*git, "commit", "-qm", "c"], check=True)
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert git_commit(tmp_path) == head
    (tmp_path / "untracked.txt").write_text("x")  # untracked files do not count
    assert git_commit(tmp_path) == head
    (tmp_path / "f.txt").write_text("b")
    assert git_commit(tmp_path) == f"{head}-dirty"
