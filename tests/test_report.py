"""``make report``: the latest results of every method on a setup, as CSV and Markdown."""

from __future__ import annotations

import csv
import os
import time

import pytest

from learnct.report import collect_results, main


def _write(folder, rows):
    folder.mkdir(parents=True)
    fields = [
        "method",
        "physics",
        "test_set",
        "psnr",
        "ssim",
        "ms_per_slice",
        "device",
        "commit",
        "run_dir",
    ]
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**dict.fromkeys(fields, ""), **r})


def test_latest_run_per_method_wins_and_other_setups_are_ignored(tmp_path, capsys):
    logs = tmp_path / "logs"
    old = {
        "method": "LearnedPrimalDual",
        "physics": "fan_lowdose",
        "test_set": "ellipses",
        "psnr": "30.0",
        "ssim": "0.8",
    }
    _write(logs / "lpd" / "runs" / "a", [old])
    earlier = time.time() - 100
    os.utime(logs / "lpd" / "runs" / "a" / "results.csv", (earlier, earlier))
    _write(logs / "lpd" / "runs" / "b", [{**old, "psnr": "32.5", "ssim": "0.9"}])
    _write(
        logs / "fbp" / "runs" / "c",
        [{**old, "method": "FBP", "psnr": "29.6"}, {**old, "method": "FBP", "physics": "fan_mayo"}],
    )
    (logs / "broken" / "runs" / "d").mkdir(parents=True)
    (logs / "broken" / "runs" / "d" / "results.csv").write_text("garbage\n")

    rows, problems = collect_results(logs, "fan_lowdose")
    assert [(r["method"], r["psnr"]) for r in rows] == [
        ("FBP", "29.6"),
        ("LearnedPrimalDual", "32.5"),
    ]
    assert len(problems) == 1 and "broken" in problems[0]

    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(tmp_path / "exp")])
    md = (tmp_path / "exp" / "fan_lowdose" / "results.md").read_text()
    assert "| LearnedPrimalDual | ellipses | - | 32.50 | 0.900 |" in md
    with open(tmp_path / "exp" / "fan_lowdose" / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert "skipped unreadable results" in capsys.readouterr().out


def test_no_results_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--setup", "fan_lowdose", "--logs", str(tmp_path)])
    assert err.value.code == 1
    assert "run make train EXP=<method>" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--setup", "nope"])
