"""The ``sparse_build`` section: native and torch builds timed in one run, peaks measured."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from learnct.bench.resident_memory import resident_peak_bytes
from learnct.bench.sparse_build import sparse_build_rows
from learnct.physics import FanBeamGeometry
from learnct.physics.backends import sparse
from learnct.physics.backends.joseph_csr import joseph_csr_kernel

GEOMETRY = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48)
can_reset_peak = pytest.mark.skipif(
    not Path("/proc/self/clear_refs").exists(), reason="no /proc/self/clear_refs"
)


@can_reset_peak
def test_resident_peak_sees_a_64_mib_allocation_that_is_freed_before_it_returns():
    def touch_and_free():
        block = torch.ones(16 << 20)  # 64 MiB, written, so resident
        return float(block[-1])

    out, peak = resident_peak_bytes(touch_and_free)
    assert out == 1.0
    assert 60 << 20 <= peak < 200 << 20


@pytest.mark.skipif(joseph_csr_kernel() is None, reason="no C++ compiler")
def test_rows_time_both_builds_within_their_bounds():
    rows = sparse_build_rows([GEOMETRY])
    assert [r["build"] for r in rows] == ["native (C++)", "torch"]
    stored = sum(
        t.numel() * t.element_size()
        for m in sparse.build_joseph_csr(GEOMETRY)
        for t in (m.crow_indices(), m.col_indices(), m.values())
    )
    for row in rows:
        assert row["geometry"] == "fan 32^2, 40 x 48" and float(row["build s"]) > 0
        assert row["stored MB"] == f"{stored / 2**20:.1f}"
    bounds = [float(r["bound MB (auto)"]) for r in rows]
    assert bounds[0] < bounds[1]  # the native build needs less
    assert rows[0]["vs torch"].endswith("x faster") and rows[1]["vs torch"] == "-"


def test_without_the_torch_build_there_is_no_ratio():
    rows = sparse_build_rows([GEOMETRY], torch_build=False)
    assert len(rows) == 1 and rows[0].get("vs torch", "-") == "-"
