"""The ``methods`` section on ``parallel_ellipses`` (the real benchmark is never a test), and
the class attributes it builds the methods from."""

from __future__ import annotations

import inspect

import pytest

from learnct.bench.methods import build_untrained, extrapolate_iterations_ms, method_rows
from learnct.methods import METHODS
from learnct.physics import RayTransform, parallel_ellipses


def test_class_attributes_match_the_constructors():
    for name, cls in METHODS.items():
        params = {
            p
            for c in cls.__mro__
            if "__init__" in vars(c)
            for p in inspect.signature(c.__init__).parameters
        }
        assert cls.needs_operator_norm == ("operator_norm" in params), name
        assert cls.takes_execution_flags == ({"autocast", "compile"} <= set(params)), name
    assert [n for n, c in METHODS.items() if c.needs_operator_norm] == [
        "tv",
        "learned_inverse",
        "lgd",
        "lpd",
    ]
    assert [n for n, c in METHODS.items() if not c.takes_execution_flags] == ["fbp", "tv"]


def test_build_untrained_passes_the_norm_and_flags_where_the_class_takes_them():
    operator = RayTransform(parallel_ellipses().geometry)
    norm = operator.norm(iterations=20)
    lgd = build_untrained("lgd", operator, {"autocast": "bf16"})
    assert lgd.hparams.autocast == "bf16" and lgd.hparams.n_panels == 0
    assert lgd.operator_norm() == pytest.approx(norm)
    assert build_untrained("lgd", operator).hparams.autocast is None
    tv = build_untrained("tv", operator, iterations=7)
    assert tv.hparams.iterations == 7 and tv.hparams.operator_norm == pytest.approx(norm)
    assert "operator_norm" not in build_untrained("fbpunet", operator).hparams


def test_method_rows_time_every_method():
    rows = method_rows(["parallel_ellipses"], "cpu", quick=True)
    assert [r["method"] for r in rows] == ["fbp", "tv", "learned_inverse", "fbpunet", "lgd", "lpd"]
    for row in rows:
        assert row["note"] == "" or row["method"] == "tv", row["note"]
        assert float(row["ms per slice"]) > 0
    assert {r["method"]: r["parameters"] for r in rows}["lpd"] == 253220
    assert rows[1]["note"] == "10 and 20 iterations timed, extrapolated to 300"


@pytest.mark.slow  # bf16 is emulated on CPUs without AVX512-BF16: about a minute here
def test_method_rows_with_bf16_time_only_the_learned_methods_with_the_flag():
    rows = method_rows(["parallel_ellipses"], "cpu", quick=True, flag_sets=(None, "bf16"))
    flagged = [(r["method"], r["flags"]) for r in rows if r["flags"] != "-"]
    assert flagged == [(m, "bf16") for m in ("learned_inverse", "fbpunet", "lgd", "lpd")]
    assert len(rows) == 6 + 4 and all(float(r["ms per slice"]) > 0 for r in rows)


def test_tv_time_counts_the_start_once_and_scales_the_iterations():
    # 10 iterations 170 ms, 20 iterations 290 ms: 12 ms each plus 50 ms once -> 300: 3650 ms
    assert extrapolate_iterations_ms(170.0, 290.0, 10, 300) == pytest.approx(3650.0)
    assert extrapolate_iterations_ms(170.0, 160.0, 10, 300) == pytest.approx(170.0)  # noise
