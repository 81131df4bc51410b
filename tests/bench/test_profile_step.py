"""``bench.profile_step``: kernels sorted into families by name, and a profiled CPU step
whose projector and convolution time are found."""

from __future__ import annotations

import pytest

from learnct.bench.profile_step import family, profile_step


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("joseph_gather_adjoint_kernel", "projector"),
        ("learnct::ray_forward", "projector"),
        ("triton_poi_fused_convolution_backward_0", "inductor (fused pointwise)"),
        ("sm90_xmma_fprop_implicit_gemm_bf16bf16", "convolution"),
        ("aten::mkldnn_convolution", "convolution"),
        ("void multi_tensor_apply_kernel<FusedAdam>", "optimizer"),
        ("aten::copy_", "other"),
    ],
)
def test_kernel_families(name, expected):
    assert family(name) == expected


@pytest.mark.parametrize("method", ["lpd", "lgd"])
def test_a_profiled_cpu_step_finds_the_projector_and_the_convolutions(method):
    summary, kernels = profile_step(
        "parallel_ellipses", 1, "baseline", "cpu", steps=1, warmup=1, method=method
    )
    assert {row["method"] for row in summary} == {method}
    parts = {row["part"]: float(row["ms per step"]) for row in summary}
    assert parts["wall"] > 0 and parts["projector"] > 0 and parts["convolution"] > 0
    assert parts["kernels"] == pytest.approx(
        sum(v for k, v in parts.items() if k not in ("wall", "kernels")), abs=0.01
    )
    assert 0 < len(kernels) <= 12


def test_a_method_without_training_is_refused():
    with pytest.raises(ValueError, match=r"method 'fbp' has no training step: choose one of"):
        profile_step("parallel_ellipses", 1, "baseline", "cpu", method="fbp")


def test_a_flag_the_method_does_not_take_is_refused_by_name():
    """Gradient checkpointing exists for the unrolled nets only: FBP + U-Net refuses it."""
    with pytest.raises(ValueError, match=r"fbpunet takes no checkpoint: choose flags it takes"):
        profile_step("parallel_ellipses", 1, "checkpoint", "cpu", method="fbpunet")
