"""Checkpoints are written to a temporary file and renamed: an interrupted save leaves the
previous checkpoint whole and no partial file."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from learnct.run import atomic_checkpoint
from learnct.run.atomic_checkpoint import (
    AtomicCheckpointIO,
    atomic_torch_save,
    remove_stale_temporaries,
)


def test_interrupted_save_keeps_the_previous_checkpoint_whole(monkeypatch, tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": 1, "w": torch.arange(1000.0)}, path)
    real_save = torch.save

    def dies_halfway(obj, fh):
        real_save(obj, fh)
        fh.truncate(fh.tell() // 2)  # a partial file, as a kill during the write leaves
        raise KeyboardInterrupt

    monkeypatch.setattr(atomic_checkpoint.torch, "save", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        atomic_torch_save({"step": 2, "w": torch.zeros(1000)}, path)
    kept = torch.load(path, weights_only=True)
    assert kept["step"] == 1 and torch.equal(kept["w"], torch.arange(1000.0))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_trainer_saves_through_the_atomic_plugin(tmp_path):
    trainer = L.Trainer(
        plugins=[AtomicCheckpointIO()], logger=False, enable_progress_bar=False, max_steps=1
    )
    assert isinstance(trainer.strategy.checkpoint_io, AtomicCheckpointIO)
    trainer.strategy.checkpoint_io.save_checkpoint({"x": torch.ones(3)}, tmp_path / "a" / "b.ckpt")
    assert torch.equal(torch.load(tmp_path / "a" / "b.ckpt", weights_only=True)["x"], torch.ones(3))
    assert [p.name for p in (tmp_path / "a").iterdir()] == ["b.ckpt"]


def test_stale_temporaries_of_a_killed_save_are_removed(tmp_path):
    stale = tmp_path / ".last.ckpt.k2j3h4.tmp"
    stale.write_bytes(b"partial")
    (tmp_path / "last.ckpt").write_bytes(b"whole")
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
