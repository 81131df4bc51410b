"""``InverseTimeDecay``: TF1's ``inverse_time_decay`` as a ``LambdaLR`` factor (the learned
gradient paper's schedule), which a checkpoint saves and a resume continues."""

from __future__ import annotations

import io

import pytest
import torch

from learnct.methods.lr_schedules import InverseTimeDecay


def test_staircase_factors_follow_tf_inverse_time_decay():
    decay = InverseTimeDecay(500)  # decay_rate 1, staircase: 1 / (1 + floor(k / 500))
    assert [decay(k) for k in (0, 499, 500, 999, 1000, 100_000)] == pytest.approx(
        [1, 1, 1 / 2, 1 / 2, 1 / 3, 1 / 201]
    )
    smooth = InverseTimeDecay(500, decay_rate=0.5, staircase=False)
    assert smooth(250) == pytest.approx(1 / 1.25)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decay_steps": 0}, "decay_steps must be a positive integer"),
        ({"decay_steps": 2.5}, "decay_steps must be a positive integer"),
        ({"decay_steps": 10, "decay_rate": -1.0}, "decay_rate must be a finite number"),
        ({"decay_steps": 10, "decay_rate": float("nan")}, "decay_rate must be a finite number"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        InverseTimeDecay(**kwargs)


def _scheduler(
    decay: InverseTimeDecay,
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR]:
    optimizer = torch.optim.RMSprop([torch.nn.Parameter(torch.zeros(2))], lr=1e-3, alpha=0.9)
    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda=decay)


def test_a_saved_schedule_resumes_where_it_stopped():
    """700 steps, a ``weights_only`` checkpoint (with the factor's settings in it) and 500 more
    give the schedule's learning rate at 1200 (5e-4 at 700, 1e-3/3 from 1000 on)."""
    optimizer, scheduler = _scheduler(InverseTimeDecay(500))
    for _ in range(700):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-4)
    saved = scheduler.state_dict()["lr_lambdas"]
    assert saved == [{"decay_steps": 500, "decay_rate": 1.0, "staircase": True}]
    buffer = io.BytesIO()
    torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    resumed_optimizer, resumed = _scheduler(InverseTimeDecay(500))
    resumed_optimizer.load_state_dict(state["optimizer"])
    resumed.load_state_dict(state["scheduler"])
    for _ in range(500):
        resumed_optimizer.step()
        resumed.step()
    assert resumed.last_epoch == 1200
    assert resumed_optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 / 3)
