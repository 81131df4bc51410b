"""Run identity: unique run folders, ``run.json`` and checkpoint stamps, and ``resume``
continuing exactly an unfinished run of the same settings (never a finished or different one)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from conftest import TINY_LGD
from learnct.run.config_checks import ConfigError
from learnct.run.identity import new_identity, read_identity, run_settings, write_identity
from learnct.run.resume import find_resume_checkpoint, is_finished

STEPS = ["trainer.max_steps=2", "trainer.val_check_interval=2", "test=false"]


def _run_folder(log_dir: Path, name: str, settings: dict, finished: bool, ckpt: bool = True):
    folder = log_dir / "lgd" / "runs" / name
    (folder / "checkpoints").mkdir(parents=True)
    identity = new_identity(OmegaConf.create({"task_name": "lgd"}))
    identity["settings"] = settings
    if finished:
        identity["finished"] = "2026-01-01T00:00:00"
    write_identity(folder, identity)
    if ckpt:
        torch.save({"learnct_run": {"id": identity.id}}, folder / "checkpoints" / "last.ckpt")
    return folder


def test_run_folders_started_in_the_same_second_differ(compose_config):
    cfg = compose_config("train", [], return_hydra_config=True)
    own = OmegaConf.select(cfg, "hydra.run.dir")
    token = "import learnct.run.grouping as g; print(g.run_token())"
    others = {
        subprocess.run([sys.executable, "-c", token], capture_output=True, text=True).stdout
        for _ in range(2)
    }
    assert len(others) == 2  # each process names its folders with its own random token
    stamp, _, suffix = Path(own).name.rpartition("_")
    assert len(stamp) == len("2026-01-01_00-00-00") and len(suffix) == 6
    sweep = OmegaConf.select(cfg, "hydra.sweep.dir")
    assert Path(sweep).name.endswith(suffix)


def test_resume_true_takes_the_newest_unfinished_run_of_the_same_settings(tmp_path):
    mine = {"seed": 0, "model": {"n_iter": 1}, "trainer.max_steps": 6}
    wanted = _run_folder(tmp_path, "2026-01-01_10-00-00_aaaaaa", mine, finished=False)
    _run_folder(tmp_path, "2026-01-02_10-00-00_bbbbbb", mine, finished=True)
    other = {**mine, "model": {"n_iter": 2}}
    _run_folder(tmp_path, "2026-01-03_10-00-00_cccccc", other, finished=False)
    _run_folder(tmp_path, "2026-01-04_10-00-00_dddddd", mine, finished=False, ckpt=False)
    found = find_resume_checkpoint(tmp_path, "lgd", settings=mine)
    assert found == wanted / "checkpoints" / "last.ckpt"
    assert is_finished(tmp_path / "lgd" / "runs" / "2026-01-02_10-00-00_bbbbbb")
    with pytest.raises(FileNotFoundError) as err:
        find_resume_checkpoint(tmp_path, "lgd", settings={**mine, "trainer.max_steps": 9})
    message = str(err.value)
    assert "no unfinished run of task_name='lgd' with these settings" in message
    assert "trainer.max_steps: 6 -> 9" in message  # the schedule would change
    assert "2026-01-02_10-00-00_bbbbbb: its training finished; train on from its weights" in message
    assert "model.n_iter: 2 -> 1" in message


def _cfg(compose_config, tmp_path: Path, name: str, *overrides: str):
    log_dir = tmp_path / "logs"
    return compose_config(
        "train",
        [*TINY_LGD, *STEPS, f"paths.log_dir={log_dir}", *overrides],
        log_dir / "lgd" / "runs" / name,
    )


def test_a_run_records_its_identity_and_a_finished_run_is_never_resumed(
    tmp_path, compose_config, run_config
):
    run_config(_cfg(compose_config, tmp_path, "a"))
    folder = tmp_path / "logs" / "lgd" / "runs" / "a"
    identity = read_identity(folder)
    assert identity["finished"] and identity.settings["trainer.max_steps"] == 2
    stamp = torch.load(folder / "checkpoints" / "last.ckpt", weights_only=True)["learnct_run"]
    assert stamp == {"id": identity.id, "settings": identity.settings}
    # B, with other settings, was killed before its first checkpoint; resuming it must not
    # continue (and overwrite) the finished run A
    b = _cfg(compose_config, tmp_path, "b", "model.n_iter=2", "resume=true")
    with pytest.raises(ConfigError, match=r"a: its training finished; train on from its weights"):
        run_config(b)
    with pytest.raises(ConfigError, match=r"resume='a': cannot continue .*training finished"):
        run_config(_cfg(compose_config, tmp_path, "c", "resume=a"))
    with pytest.raises(ConfigError, match=r"resume='nowhere': no such run folder"):
        run_config(_cfg(compose_config, tmp_path, "c", "resume=nowhere"))


def test_resume_refuses_a_checkpoint_stamped_by_another_run(tmp_path, compose_config, run_config):
    cfg = _cfg(compose_config, tmp_path, "x")
    folder = _run_folder(tmp_path / "logs", "old", run_settings(cfg), finished=False)
    run_config(_cfg(compose_config, tmp_path, "y"))  # a finished run: its checkpoint ...
    copied = tmp_path / "logs" / "lgd" / "runs" / "y" / "checkpoints" / "last.ckpt"
    (folder / "checkpoints" / "last.ckpt").write_bytes(copied.read_bytes())  # ... copied
    with pytest.raises(ConfigError, match=r"resume: checkpoint .* belongs to run \w+, not to"):
        run_config(_cfg(compose_config, tmp_path, "z", "resume=old"))


def test_a_setting_the_old_run_did_not_record_is_not_a_difference():
    from learnct.run.identity import differences

    old = {"model": {"n_iter": 10}}
    new = {"model": {"n_iter": 10, "statistical_weights": False}}
    assert differences(old, new) == []
    assert differences(new, {"model": {"n_iter": 10, "statistical_weights": True}}) == [
        "model.statistical_weights: False -> True"
    ]
    assert differences(old, {"model": {"n_iter": 5}}) == ["model.n_iter: 10 -> 5"]


def test_a_run_continues_under_other_execution_settings_only(compose_config):
    """How a run executes (loader processes, pinned memory, phantoms on the device, compiled,
    recomputed or bf16 blocks) may change between sittings, e.g. a CPU sitting continued on a
    GPU; what it trains may not."""
    from omegaconf import OmegaConf

    from learnct.run.identity import EXECUTION_KEYS, differences, run_settings

    paper = ["experiment=paper/lpd_parallel_ellipses"]
    cfg = compose_config("train", paper)
    for key in EXECUTION_KEYS:  # the data ones name settings of the config (none rotted away)
        if key.startswith("data."):
            assert OmegaConf.select(cfg, key, default="missing") != "missing", key
    other = [
        "data.num_workers=2",
        "data.pin_memory=true",
        "data.phantoms_on_device=false",
        "model.compile=true",
        "model.checkpoint=true",
        "model.autocast=bf16",
    ]
    base = run_settings(cfg)
    assert differences(base, run_settings(compose_config("train", [*paper, *other]))) == []
    trained = ["data.train_size=64", "data.batch_size=4", "model.hidden=16", "seed=1"]
    assert differences(base, run_settings(compose_config("train", [*paper, *trained]))) == [
        "data.batch_size: 5 -> 4",
        "data.seed: 0 -> 1",
        "data.train_size: 1000 -> 64",
        "model.hidden: 32 -> 16",
        "seed: 0 -> 1",
    ]


def test_the_execution_keys_of_the_model_are_the_methods_execution_settings():
    from learnct.methods.checkpoints import EXECUTION
    from learnct.run.identity import EXECUTION_KEYS

    model = {k.removeprefix("model.") for k in EXECUTION_KEYS if k.startswith("model.")}
    assert model == EXECUTION
