"""Non-finite loss or gradients: the step is skipped (no weight update) and counted; after
``max_nonfinite_steps`` in a row the run stops with a message and intact checkpoints."""

from __future__ import annotations

import csv

import pytest
import torch

from conftest import TINY_LGD
from learnct.methods.classical import FBP
from learnct.methods.learned import LearnedGradientDescent
from learnct.run.nonfinite import (
    NonFiniteGuard,
    NonFiniteResultsError,
    NonFiniteTrainingError,
    check_finite_results,
)


def _poison(monkeypatch, bad_steps) -> dict:
    """Make LGD's training output NaN at the global steps in ``bad_steps``."""
    original = LearnedGradientDescent.forward
    seen: dict = {}

    def forward(self, sinogram):
        out = original(self, sinogram)
        seen["model"] = self
        if self.training and bad_steps(self.global_step):
            return out * float("nan")
        return out

    monkeypatch.setattr(LearnedGradientDescent, "forward", forward)
    return seen


def test_nonfinite_steps_in_a_row_stop_the_run_with_its_checkpoints_intact(
    monkeypatch, tmp_path, compose_config, run_config
):
    seen = _poison(monkeypatch, lambda step: step >= 2)
    cfg = compose_config(
        "train",
        [
            *TINY_LGD,
            "trainer.max_steps=50",
            "trainer.val_check_interval=2",
            "max_nonfinite_steps=3",
            "test=false",
        ],
        tmp_path,
    )
    with pytest.raises(NonFiniteTrainingError) as info, pytest.warns(RuntimeWarning):
        run_config(cfg)
    message = str(info.value)
    assert "training stopped at step 4: 3 steps in a row had a non-finite loss" in message
    assert "max_nonfinite_steps=3" in message and "model.optimizer.lr" in message
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert f"the checkpoints in {tmp_path / 'checkpoints'} are intact" in message
    assert last["global_step"] == 4  # saved after two skipped steps
    assert last["callbacks"]["NonFiniteGuard"] == {"skipped": 2, "consecutive": 2}
    weights = seen["model"].state_dict()
    for name, value in last["state_dict"].items():
        assert torch.isfinite(value).all(), name
        # the skipped steps did not move the weights: the stopped model is the saved one
        torch.testing.assert_close(weights[name].cpu(), value, rtol=0, atol=0)


def test_a_transient_nonfinite_step_is_skipped_and_counted(
    monkeypatch, tmp_path, compose_config, run_config
):
    _poison(monkeypatch, lambda step: step == 1)
    cfg = compose_config(
        "train",
        [
            *TINY_LGD,
            "trainer.max_steps=4",
            "trainer.val_check_interval=4",
            "trainer.log_every_n_steps=1",
            "test=false",
        ],
        tmp_path,
    )
    said = r"step 1: non-finite loss or gradient, step skipped \(loss nan; non-finite gradients in"
    with pytest.warns(RuntimeWarning, match=said):
        result = run_config(cfg)
    assert result.objective is not None and result.objective > 0
    (metrics,) = tmp_path.glob("csv/version_*/metrics.csv")
    with open(metrics) as fh:
        counts = [
            float(r["train/nonfinite_steps"])
            for r in csv.DictReader(fh)
            if r.get("train/nonfinite_steps")
        ]
    assert counts == [0.0, 1.0, 1.0, 1.0]
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())


def test_the_skip_count_runs_over_a_schedules_sittings(
    monkeypatch, tmp_path, compose_config, run_config
):
    """A sittings checkpoint carries the guard's count, and ``curve.csv`` gives the count at
    each validation point: the skipped steps of the whole schedule, not of the last sitting."""
    from learnct.run.sittings import read_sitting_curve

    _poison(monkeypatch, lambda step: step in (1, 2))
    sittings = tmp_path / "sittings"
    overrides = [
        *TINY_LGD,
        f"sitting_dir={sittings}",
        "sitting_steps=2",
        "trainer.max_steps=4",
        "trainer.val_check_interval=1",
        "trainer.log_every_n_steps=1",
        "test=false",
    ]
    with pytest.warns(RuntimeWarning, match="step 1: non-finite"):
        run_config(compose_config("train", overrides, tmp_path / "first"))
    first = torch.load(sittings / "last.ckpt", weights_only=True)
    assert first["callbacks"] == {"NonFiniteGuard": {"skipped": 1, "consecutive": 1}}
    with pytest.warns(RuntimeWarning, match=r"\(2 in a row, 2 in all"):
        run_config(compose_config("train", overrides, tmp_path / "second"))
    last = torch.load(sittings / "last.ckpt", weights_only=True)
    assert last["callbacks"] == {"NonFiniteGuard": {"skipped": 2, "consecutive": 0}}
    curve = read_sitting_curve(sittings)
    # a point at step k follows k steps, of indices 0 to k - 1 (the poisoned ones: 1 and 2)
    assert [(p["step"], p["nonfinite_steps"]) for p in curve] == [
        ("1", "0"),
        ("2", "1"),
        ("3", "2"),
        ("4", "2"),
    ]


def test_a_skip_names_what_was_not_finite():
    """The warning of a skipped step says whether the loss or which gradients were not
    finite (bf16 overflows show up in a few tensors, bad data in the loss)."""
    from learnct.run.nonfinite import _what_is_not_finite

    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 1))
    params = list(net.parameters())
    for p in params:
        p.grad = torch.zeros_like(p)
    assert _what_is_not_finite(net, params, torch.tensor(0.5)) == "loss 0.5"
    params[2].grad[0, 1] = float("inf")
    said = _what_is_not_finite(net, params, torch.tensor(0.5))
    assert said == "loss 0.5; non-finite gradients in 1 of 4 tensors: 1.weight"
    for p in params:
        p.grad.fill_(float("nan"))
    said = _what_is_not_finite(net, params, torch.tensor(float("nan")))
    assert said == (
        "loss nan; non-finite gradients in 4 of 4 tensors: 0.weight, 0.bias, 1.weight, ..."
    )
    assert _what_is_not_finite(net, [], None) == "no loss or gradients seen"


def test_a_checkpoint_between_two_reads_of_the_device_counts_has_them():
    """With a fused optimiser the skips are counted on the device and read every
    ``log_every_n_steps``; a checkpoint saved between two reads (a sitting that ends by time)
    still carries them."""
    guard = NonFiniteGuard(max_consecutive=10)
    guard.skipped = 4
    guard._on_device = (torch.tensor(3), torch.tensor(1), torch.tensor(2))
    assert guard.state_dict() == {"skipped": 7, "consecutive": 1}
    assert guard.state_dict() == {"skipped": 7, "consecutive": 1}  # folded once


def test_guard_rejects_a_bad_limit():
    with pytest.raises(ValueError, match="max_consecutive must be an integer >= 1, got 0"):
        NonFiniteGuard(0)


def test_nonfinite_test_results_stop_the_run_before_results_are_written(
    monkeypatch, tmp_path, compose_config, run_config
):
    """One NaN reconstruction makes its test set's metrics NaN (not dropped from the mean): the
    run raises (the CLI exits 1) naming the test set and metrics, and writes no results.csv."""
    original = FBP.forward
    calls = []

    def forward(self, sinogram):
        out = original(self, sinogram)
        if self.trainer.testing:
            calls.append(len(sinogram))
            if len(calls) == 2:  # the timed call on the first test batch (after the warm-up)
                return out * float("nan")
        return out

    monkeypatch.setattr(FBP, "forward", forward)
    cfg = compose_config(
        "train",
        ["experiment=fbp", "data.val_size=2", "data.test_size=2", "data.eval_batch_size=1"],
        tmp_path,
    )
    with pytest.raises(
        NonFiniteResultsError,
        match=r"^the test results are not finite \(ellipses: psnr=nan, ssim=nan\); no "
        r"results.csv written. The reconstructions hold NaN or inf: if FBP's \(fbp_\*\) do too, "
        r"the simulated measurements do \(check physics\.\* and the data\), else the method "
        r"\(check its checkpoint and model\.\* settings\)$",
    ):
        run_config(cfg)
    assert calls == [1, 1, 1, 1, 1]  # ellipses: warm-up + 2 images; shepp_logan: 2 images
    assert not (tmp_path / "results.csv").exists()


def test_nonfinite_results_name_each_test_set_and_metric():
    rows = [
        {"test_set": "a", "psnr": 30.0, "ssim": None, "fbp_psnr": float("inf")},
        {"test_set": "b", "psnr": 30.0, "ssim": 0.9, "fbp_psnr": 20.0},
    ]
    with pytest.raises(
        NonFiniteResultsError, match=r"^the test results are not finite \(a: fbp_psnr=inf\);"
    ):
        check_finite_results(rows, ["psnr", "ssim", "fbp_psnr"])
    check_finite_results(rows[1:], ["psnr", "ssim", "fbp_psnr"])


def test_with_a_fused_optimizer_the_guard_skips_on_the_device(
    monkeypatch, tmp_path, compose_config, run_config
):
    """Fused Adam (the fast path on CUDA; CPU here) gets the guard's device flag ``found_inf``
    and leaves the weights as they are; the counts are read every ``log_every_n_steps``."""
    seen = _poison(monkeypatch, lambda step: step >= 2)
    cfg = compose_config(
        "train",
        [
            *TINY_LGD,
            "+model.optimizer.fused=true",
            "trainer.max_steps=50",
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=5",
            "max_nonfinite_steps=3",
            "test=false",
        ],
        tmp_path,
    )
    with pytest.raises(NonFiniteTrainingError) as info, pytest.warns(RuntimeWarning):
        run_config(cfg)
    assert seen["model"].optimizers().optimizer.defaults["fused"] is True
    assert "training stopped at step 4: 3 steps in a row" in str(info.value)  # read at step 4
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4  # saved after two skipped steps
    weights = seen["model"].state_dict()
    for name, value in last["state_dict"].items():
        torch.testing.assert_close(weights[name].cpu(), value, rtol=0, atol=0)
