"""Non-finite loss or gradients: the step is skipped (no weight update) and counted; after
``max_nonfinite_steps`` in a row the run stops with a message and intact checkpoints."""

from __future__ import annotations

import csv

import pytest
import torch

from conftest import TINY_LGD
from learnct.methods.learned import LearnedGradientDescent
from learnct.run.nonfinite import NonFiniteGuard, NonFiniteTrainingError


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
    with pytest.warns(RuntimeWarning, match="step 1: non-finite loss or gradient, step skipped"):
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


def test_guard_rejects_a_bad_limit():
    with pytest.raises(ValueError, match="max_consecutive must be an integer >= 1, got 0"):
        NonFiniteGuard(0)
