"""``make bench`` machinery on a tiny geometry (the real benchmark is never a test)."""

from __future__ import annotations

import pytest
import torch

from learnct.bench.__main__ import fbp_rows, markdown_table, projector_rows
from learnct.physics import FanBeamGeometry
from learnct.bench.timing import median_ms


def test_projector_and_fbp_rows_on_a_tiny_geometry():
    geometry = FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24)
    rows = projector_rows([geometry], ["sparse", "matrix_free"], batch=2, device="cpu", reps=1)
    assert [r["backend"] for r in rows] == ["sparse", "matrix_free"]
    for row in rows:
        assert float(row["forward ms"]) > 0 and float(row["adjoint ms"]) > 0
        assert float(row["adjoint error"]) < 1e-5
    assert "(stored)" in rows[0]["memory MB"]
    table = markdown_table(rows + fbp_rows([geometry], batch=2, device="cpu", reps=1))
    assert table.count("\n") == 2 + 3 and "| backend |" in table


def test_median_ms_is_the_median():
    calls = []
    ms = median_ms(lambda: calls.append(1), warmup=2, reps=5)
    assert len(calls) == 7 and ms >= 0


def test_method_rows_time_every_method():
    from learnct.bench.__main__ import method_rows

    rows = method_rows(["parallel_ellipses"], "cpu", quick=True)
    assert [r["method"] for r in rows] == ["fbp", "tv", "learned_inverse", "fbpunet", "lgd", "lpd"]
    for row in rows:
        assert row["note"] == "" or row["method"] == "tv", row["note"]
        assert float(row["ms per slice"]) > 0
    assert {r["method"]: r["parameters"] for r in rows}["lpd"] == 253220


@pytest.mark.slow  # bf16 is emulated on CPUs without AVX512-BF16: about a minute here
def test_method_rows_with_bf16_time_only_the_learned_methods_with_the_flag():
    from learnct.bench.__main__ import method_rows
    from learnct.bench.methods import _build
    from learnct.physics import RayTransform, parallel_ellipses

    operator = RayTransform(parallel_ellipses().geometry)
    assert _build("lgd", operator, None, {"autocast": "bf16"}).hparams.autocast == "bf16"
    assert _build("lgd", operator, None).hparams.autocast is None
    rows = method_rows(["parallel_ellipses"], "cpu", quick=True, flag_sets=(None, "bf16"))
    flagged = [(r["method"], r["flags"]) for r in rows if r["flags"] != "-"]
    assert flagged == [(m, "bf16") for m in ("learned_inverse", "fbpunet", "lgd", "lpd")]
    assert len(rows) == 6 + 4 and all(float(r["ms per slice"]) > 0 for r in rows)


@pytest.mark.slow  # LPD steps in-process and in a fresh interpreter: 37-165 s by load
def test_training_rows_quick_measure_time_and_memory():
    from learnct.bench.__main__ import training_rows
    from learnct.bench.training import native_bf16

    rows = training_rows([("parallel_ellipses", 1)], "cpu", quick=True)
    assert [r["flags"] for r in rows] == ["baseline", "bf16"]
    base, bf16 = rows
    assert base["note"] == "" and base["time / baseline"] == "1.00"
    assert float(base["ms per step"]) > 0
    # the step's peak (activations of 10 iterations at 128^2, > 10 MB) sits inside the total
    assert 10 < float(base["step peak MB"]) < float(base["total peak MB"])
    if native_bf16(torch.device("cpu")):
        assert float(bf16["ms per step"]) > 0 and bf16["note"] == ""
    else:
        assert bf16["note"].startswith("not run: this CPU has no native bf16")
