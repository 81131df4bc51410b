"""The ``projector`` and ``fbp`` sections and the one projector timer, on a tiny geometry."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from learnct.bench.fbp import fbp_rows
from learnct.bench.projectors import (
    adjoint_error,
    projector_inputs,
    projector_rows,
    time_projector,
)
from learnct.bench.tables import markdown_table
from learnct.physics import FanBeamGeometry, RayTransform

GEOMETRY = FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24)


def test_projector_and_fbp_rows_on_a_tiny_geometry():
    rows = projector_rows([GEOMETRY], ["sparse", "matrix_free"], batch=2, device="cpu", reps=1)
    assert [r["backend"] for r in rows] == ["sparse", "matrix_free"]
    for row in rows:
        assert float(row["forward ms"]) > 0 and float(row["adjoint ms"]) > 0
        assert float(row["adjoint error"]) < 1e-5
        assert row["geometry"] == "fan 16^2, 8 x 24" and row["vs ASTRA (all threads)"] == "-"
    assert "(stored)" in rows[0]["memory MB"] and "(load " in rows[0]["build s"]
    assert rows[1]["memory MB"] == "<= 256 (per chunk)" and rows[1]["build s"] == "-"
    table = markdown_table(rows + fbp_rows([GEOMETRY], batch=2, device="cpu", reps=1))
    assert table.count("\n") == 2 + 3 and "| backend |" in table


def test_a_device_with_an_index_is_its_type():
    rows = projector_rows([GEOMETRY], ["sparse"], batch=2, device="cpu:0", reps=1)
    assert [r["backend"] for r in rows] == ["sparse"] and float(rows[0]["forward ms"]) > 0


def test_each_backend_compiles_its_native_code_before_a_build_is_timed(monkeypatch):
    from learnct.physics.backends import BACKENDS

    order = []
    sparse = BACKENDS["sparse"]
    monkeypatch.setattr(sparse, "compile_native", classmethod(lambda cls: order.append("compile")))
    prepare = sparse.prepare
    monkeypatch.setattr(sparse, "prepare", lambda self: order.append("prepare") or prepare(self))
    projector_rows([GEOMETRY], ["sparse"], batch=1, device="cpu", reps=1)
    assert order[0] == "compile" and order.count("compile") == 1 and "prepare" in order


def test_sparse_over_budget_is_a_note_row():
    (row,) = projector_rows([GEOMETRY], ["sparse"], 2, "cpu", 1, sparse_budget_bytes=0)
    assert row["note"].startswith("skipped: 0.0 GiB matrix exceeds the bench's 0.0 GiB")
    assert "forward ms" not in row


def test_projector_inputs_are_seeded_and_shaped():
    x, y = projector_inputs(GEOMETRY, 3, "cpu")
    assert x.shape == (3, 1, 16, 16) and y.shape == (3, 1, 8, 24)
    x2, y2 = projector_inputs(GEOMETRY, 3, "cpu")
    assert torch.equal(x, x2) and torch.equal(y, y2)
    assert 0 <= float(x.min()) and float(x.max()) < 1


def test_time_projector_runs_forward_and_adjoint_warmup_plus_reps_times():
    op = RayTransform(GEOMETRY)
    calls = {"forward": 0, "adjoint": 0}

    class Counting:
        def __call__(self, x):
            calls["forward"] += 1
            assert not torch.is_grad_enabled()
            return op(x)

        def adjoint(self, y):
            calls["adjoint"] += 1
            return op.adjoint(y)

    x, y = projector_inputs(GEOMETRY, 2, "cpu")
    fwd, adj = time_projector(Counting(), x, y, "cpu", reps=4, warmup=3)
    assert calls == {"forward": 7, "adjoint": 7} and fwd > 0 and adj > 0


def test_adjoint_error_is_zero_for_an_exact_pair_and_large_for_a_wrong_one():
    op = RayTransform(GEOMETRY, backend="sparse")
    x, y = projector_inputs(GEOMETRY, 2, "cpu")
    assert adjoint_error(op, x, y) < 1e-6

    class Doubled:  # adjoint twice too large: error (2 - 1) <x, A^T y> / (||Ax|| ||y||) > 0.1
        def __call__(self, x):
            return op(x)

        def adjoint(self, y):
            return 2 * op.adjoint(y)

    assert adjoint_error(Doubled(), x, y) > 0.1


@pytest.mark.skipif(importlib.util.find_spec("astra") is None, reason="astra is not installed")
def test_astra_runs_on_one_thread_and_on_all_and_the_ratio_is_against_all(monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    rows = projector_rows([GEOMETRY], ["sparse", "astra"], batch=4, device="cpu", reps=1)
    assert [r["backend"] for r in rows] == ["sparse", "astra (1 thread)", "astra (all threads)"]
    assert rows[0]["vs ASTRA (all threads)"].endswith(("x faster", "x slower"))
    assert rows[1]["vs ASTRA (all threads)"] == rows[2]["vs ASTRA (all threads)"] == "-"
    serial, threaded = (RayTransform(GEOMETRY, backend="astra", threads=t) for t in (1, 3))
    x, y = projector_inputs(GEOMETRY, 4, "cpu")
    assert threaded.backend.threads == 3
    assert torch.equal(serial(x), threaded(x))
    assert torch.equal(serial.adjoint(y), threaded.adjoint(y))
