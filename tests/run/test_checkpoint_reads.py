"""A run's start reads each checkpoint file once: the settings it adopts (``init_weights``),
the sitting it continues, its identity, the checks and the weights all share one load
(:func:`learnct.methods.checkpoints.reading_checkpoints_once`). Lightning's own load of the
checkpoint it resumes from (``trainer.fit(ckpt_path=...)``, through a file object) is not
counted."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

from conftest import TINY_LPD
from learnct.methods.checkpoints import (
    checkpoint_identity,
    load_checkpoint_file,
    reading_checkpoints_once,
)
from learnct.run.build import build_method, build_physics


def _count_loads(monkeypatch) -> dict[str, Counter]:
    """Count the ``torch.load`` calls of learnct's code, by file."""
    loads: dict[str, Counter] = {"learnct": Counter()}
    real = torch.load

    def counting(f, *args, **kwargs):
        package = sys._getframe(1).f_globals.get("__name__", "").split(".")[0]
        if package in loads and isinstance(f, str | os.PathLike):
            loads[package][Path(f).resolve()] += 1
        return real(f, *args, **kwargs)

    monkeypatch.setattr(torch, "load", counting)
    return loads


def test_a_file_is_read_once_within_the_context_and_again_once_changed(tmp_path, monkeypatch):
    path = tmp_path / "a.ckpt"
    torch.save({"step": 1}, path)
    loads = _count_loads(monkeypatch)
    with reading_checkpoints_once():
        assert load_checkpoint_file(path) is load_checkpoint_file(str(path))
        assert loads["learnct"][path] == 1
        torch.save({"step": 22}, path)  # another size: read again
        assert load_checkpoint_file(path) == {"step": 22}
        assert loads["learnct"][path] == 2
    load_checkpoint_file(path)  # outside: every call reads
    load_checkpoint_file(path)
    assert loads["learnct"][path] == 4


@pytest.mark.slow
def test_a_sitting_start_reads_each_checkpoint_once(
    tmp_path, compose_config, run_config, monkeypatch, capsys
):
    # weights to fine-tune from, as learnct stores them (stripped: no optimiser state)
    cfg = compose_config("train", [*TINY_LPD, "test=false"], tmp_path / "start")
    _, operator = build_physics(cfg)
    model = build_method(cfg, operator)
    start = tmp_path / "start.ckpt"
    identity = checkpoint_identity(model, operator.geometry)
    torch.save({"state_dict": model.state_dict(), "learnct": identity, "global_step": 1}, start)
    sitting = tmp_path / "sittings" / "last.ckpt"
    command = [*TINY_LPD, "test=false", f"init_weights={start}", f"sitting_dir={sitting.parent}"]
    command += ["sitting_steps=2"]
    # as in a Hydra run, the init_weights settings are adopted (one more reader of the file)
    monkeypatch.setattr("learnct.run.checkpoint_settings.command_line_model_keys", lambda: set())
    loads = _count_loads(monkeypatch)

    run_config(compose_config("train", command, tmp_path / "first"))
    assert "starting from the weights of" in capsys.readouterr().out
    # settings and weights from one read (it was two)
    assert loads["learnct"][start] == 1

    loads["learnct"].clear()
    run_config(compose_config("train", command, tmp_path / "second"))
    assert f"resuming from {sitting} (step 2)" in capsys.readouterr().out
    # resolve_sitting, sitting_identity and the checks share one read (it was three)
    assert loads["learnct"][sitting] == 1
    assert loads["learnct"][start] == 1  # its settings (its weights are in the sitting's)
