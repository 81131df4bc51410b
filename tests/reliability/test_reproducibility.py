"""The seed fixes everything: two CPU runs with the same seed and config give identical
metrics; the test data are identical across methods (hash in every results row); results
record the commit, the config and the library versions."""

from __future__ import annotations

import csv
import json

import lightning
import pytest
import torch
from run_configs import TINY_LGD, compose_train

from learnct.report import collect_results, write_report
from learnct.train import run

SHORT = ["trainer.max_steps=3", "trainer.val_check_interval=3", "trainer.deterministic=true"]


def _val_metrics(folder) -> list[dict[str, str]]:
    (metrics,) = folder.glob("csv/version_*/metrics.csv")
    with open(metrics) as fh:
        return [r for r in csv.DictReader(fh) if r.get("val/psnr")]


@pytest.mark.slow
def test_same_seed_same_numbers_and_test_hash_across_runs_and_methods(tmp_path):
    a = run(compose_train([*TINY_LGD, *SHORT], tmp_path / "a"))
    b = run(compose_train([*TINY_LGD, *SHORT], tmp_path / "b"))
    assert _val_metrics(tmp_path / "a") == _val_metrics(tmp_path / "b")  # bit for bit
    assert a.objective == b.objective
    for ra, rb in zip(a.rows, b.rows, strict=True):
        assert (ra["psnr"], ra["ssim"], ra["test_hash"]) == (
            rb["psnr"],
            rb["ssim"],
            rb["test_hash"],
        )

    other_seed = run(compose_train([*TINY_LGD, *SHORT, "seed=1", "test=false"], tmp_path / "c"))
    assert other_seed.objective != a.objective  # the seed does change the numbers
    fbp = run(
        compose_train(["experiment=fbp", *TINY_LGD[2:], "data.eval_batch_size=1"], tmp_path / "d")
    )
    hashes = [r["test_hash"] for r in a.rows]
    assert [r["test_hash"] for r in fbp.rows] == hashes  # same test data for every method
    assert len(set(hashes)) == 2 and all(len(h) == 16 for h in hashes)  # one per test set


def test_results_record_commit_config_and_versions(tmp_path):
    result = run(compose_train(["experiment=fbp", *TINY_LGD[2:]], tmp_path))
    with open(tmp_path / "results.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["test_hash"] for r in rows] == [r["test_hash"] for r in result.rows]
    for row in rows:
        assert row["torch_version"] == torch.__version__
        assert row["lightning_version"] == lightning.__version__
        assert row["commit"] and row["commit"] != "unknown"
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
