"""``python -m learnct.bench``: the options, and one quick section written as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from learnct.bench.__main__ import main

COMMITTED = Path(__file__).resolve().parents[2] / "experiments" / "benchmarks" / "fbp_cpu.md"


def test_help_lists_the_options():
    out = subprocess.run(
        [sys.executable, "-m", "learnct.bench", "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    for option in ("--gpu", "--large", "--quick", "--sections", "--sparse-budget-mb", "--out"):
        assert option in out.stdout
    assert "projector,sparse_build,fbp,methods,training,inference,multi_run,data_pipeline" in (
        out.stdout
    )
    assert "--multi-run-budget-s" in out.stdout


def test_quick_fbp_section_writes_the_committed_format(tmp_path, monkeypatch):
    monkeypatch.setenv("LEARNCT_CACHE_DIR", str(tmp_path / "cache"))  # main replaces it
    main(
        ["--quick", "--device", "cpu", "--batch", "2", "--sections", "fbp", "--out", str(tmp_path)]
    )
    lines = (tmp_path / "fbp_cpu.md").read_text().splitlines()
    assert lines[0] == "# fbp benchmark (cpu)" and lines[2].startswith("Machine: ")
    assert lines[4] == "| geometry | batch | fbp ms per batch | fbp ms per slice |"
    assert lines[4:6] == COMMITTED.read_text().splitlines()[4:6]
    # two geometries with --quick: fan_lowdose's and 128^2, 360 x 256
    assert lines[6].startswith("| fan 128^2, 200 x 256 | 2 | ")
    assert lines[7].startswith("| fan 128^2, 360 x 256 | 2 | ") and len(lines) == 8
    assert [p.name for p in tmp_path.glob("*.md")] == ["fbp_cpu.md"]


def test_multi_run_section_with_its_budget_spent_writes_every_group_as_not_run(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("LEARNCT_CACHE_DIR", str(tmp_path / "cache"))  # main replaces it
    args = ["--quick", "--device", "cpu", "--sections", "multi_run", "--out", str(tmp_path)]
    main([*args, "--multi-run-budget-s", "0"])
    lines = (tmp_path / "multi_run_cpu.md").read_text().splitlines()
    assert lines[0] == "# multi_run benchmark (cpu)"
    rows = [line for line in lines[6:] if line.startswith("| fan_lowdose | 1 | ")]
    assert len(rows) == 6  # --quick: K = 1, 2, three modes each
    assert all("not run: section time budget spent" in r or "CUDA only" in r for r in rows)
