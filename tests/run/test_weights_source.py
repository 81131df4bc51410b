"""``source_record``: where a run's weights come from, as its checkpoints record it."""

from __future__ import annotations

import torch
from omegaconf import OmegaConf

from learnct.run.identity import RunIdentity
from learnct.run.weights_source import source_record

IDENTITY = RunIdentity(id="run2", started="2026-12-01T10:00:00", task_name="lpd", settings={})


def _checkpoint(path, steps_before, global_step, source=None):
    record = {"method": "LearnedPrimalDual", "steps_before": steps_before}
    if source is not None:
        record["source"] = source
    torch.save({"global_step": global_step, "learnct": record}, path)
    return path


def test_a_fresh_run_and_a_warm_start_name_what_they_start_from(tmp_path):
    cfg = OmegaConf.create({"data": {"source": "ctlike"}})
    fresh = source_record(cfg, IDENTITY, "abc1234", None)
    assert fresh == {
        "run_id": "run2",
        "task_name": "lpd",
        "started": "2026-12-01T10:00:00",
        "commit": "abc1234",
        "command": None,  # not run by Hydra
        "data_source": "ctlike",
        "train_photons_range": None,
        "started_from": None,
    }
    first = {**fresh, "run_id": "run1"}
    init = _checkpoint(tmp_path / "init.ckpt", 100, 400, source=first)
    warm = source_record(OmegaConf.create({"init_weights": str(init)}), IDENTITY, "abc", None)
    assert warm["started_from"] == {"checkpoint": str(init), "steps": 500, "source": first}
    # committed weights exported before they kept their record keep their run stamp: its id
    stamped = tmp_path / "stamped.ckpt"
    torch.save({"global_step": 300, "learnct_run": {"id": "run0"}, "learnct": {}}, stamped)
    warm = source_record(OmegaConf.create({"init_weights": str(stamped)}), IDENTITY, "a", None)
    assert warm["started_from"]["source"] == {"run_id": "run0"}


def test_a_resume_keeps_its_start_also_from_a_checkpoint_saved_before_sources(tmp_path):
    start = {"checkpoint": "w.ckpt", "steps": 7, "source": None}
    recorded = _checkpoint(tmp_path / "a.ckpt", 7, 3, source={"started_from": start})
    cfg = OmegaConf.create({})
    assert source_record(cfg, IDENTITY, "abc", recorded)["started_from"] == start
    # saved before checkpoints recorded a source: its init_weights, else the steps it records
    old = _checkpoint(tmp_path / "old.ckpt", 500, 20)
    init = _checkpoint(tmp_path / "init.ckpt", 0, 500)
    with_init = source_record(OmegaConf.create({"init_weights": str(init)}), IDENTITY, "c", old)
    assert with_init["started_from"] == {"checkpoint": str(init), "steps": 500, "source": None}
    alone = source_record(cfg, IDENTITY, "abc", old)["started_from"]
    assert alone == {"checkpoint": None, "steps": 500, "source": None}
    scratch = _checkpoint(tmp_path / "scratch.ckpt", 0, 20)
    assert source_record(cfg, IDENTITY, "abc", scratch)["started_from"] is None


def test_a_checkpoint_names_the_data_its_weights_trained_on(tmp_path):
    """``training_source``: the source record's ``data_source``, with the dose range where
    each sample drew its own (a dose-aware model is not compared with the preset's one-dose
    weights); a record of before the range gives its source alone; ``None`` without one."""
    from learnct.methods.checkpoints import read_checkpoint, training_source

    record = source_record(OmegaConf.create({"data": {"source": "ctlike"}}), IDENTITY, "a", None)
    new = _checkpoint(tmp_path / "new.ckpt", 0, 5, source=record)
    assert training_source(read_checkpoint(new)) == "ctlike"
    doses = {"source": "ellipses", "train_photons_range": [1e3, 1e5]}
    record = source_record(OmegaConf.create({"data": doses}), IDENTITY, "a", None)
    assert record["train_photons_range"] == [1e3, 1e5]  # a plain list: torch.load reads it
    dose_aware = read_checkpoint(_checkpoint(tmp_path / "doses.ckpt", 0, 5, source=record))
    assert training_source(dose_aware) == "ellipses at 1000-100000 photons"
    before = {"run_id": "x", "data_source": "ctlike", "started_from": None}  # no range kept
    old = _checkpoint(tmp_path / "old.ckpt", 0, 5, source=before)
    assert training_source(read_checkpoint(old)) == "ctlike"
    record = {**record, "train_photons_range": [5e2, 1e6]}  # whole doses written whole
    wide = read_checkpoint(_checkpoint(tmp_path / "wide.ckpt", 0, 5, source=record))
    assert training_source(wide) == "ellipses at 500-1000000 photons"
    assert training_source(read_checkpoint(_checkpoint(tmp_path / "none.ckpt", 0, 5))) is None


def test_a_committed_weights_folder_says_the_training_of_its_files(tmp_path):
    """A results row of a committed file takes the folder's ``config.json`` (its dose range
    too, which checkpoints saved before the range do not record); elsewhere the checkpoint's
    record."""
    import json
    from types import SimpleNamespace

    from learnct.run.pipeline import _trained_on

    model = SimpleNamespace(trainable=True, trained_on="ctlike")  # an old record: no range
    folder = tmp_path / "fan_lowdose_ctlike" / "weights"
    folder.mkdir(parents=True)
    data = {"source": "ctlike", "train_photons_range": [1000.0, 100000.0]}
    (folder / "config.json").write_text(json.dumps({"data": data}))
    assert _trained_on(model, folder / "LearnedPrimalDual.ckpt") == "ctlike at 1000-100000 photons"
    assert _trained_on(model, tmp_path / "run" / "checkpoints" / "last.ckpt") == "ctlike"
    assert _trained_on(SimpleNamespace(trainable=False), folder / "x.ckpt") is None
