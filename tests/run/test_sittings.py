"""``sitting_steps``: a schedule run in two sittings (two processes) ends where one
uninterrupted run ends: the same weights, optimiser moments, learning-rate schedule, step
count and data stream (the batch of every step), from a stripped checkpoint in
``sitting_dir``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import REPO_ROOT, TINY_LPD
from learnct.methods.checkpoints import trained_steps, weights_source
from learnct.run import results
from learnct.run.config_checks import ConfigError
from learnct.run.sittings import RESUME_KEYS

RECORDER = '''
import json
import lightning as L

class Recorder(L.Callback):
    """Append each training step's stream indices and measurement checksum to ``path``."""

    def __init__(self, path):
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        line = {"step": trainer.global_step, "index": batch.index.tolist(),
                "sinogram": float(batch.sinogram.double().sum()),
                "lr": trainer.optimizers[0].param_groups[0]["lr"]}
        with open(self.path, "a") as fh:
            fh.write(json.dumps(line) + "\\n")
'''


def _recorded(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.slow
def test_two_sittings_end_where_one_run_ends(tmp_path, compose_config, run_config, run_cli):
    (tmp_path / "recorder.py").write_text(RECORDER)
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    sittings = tmp_path / "sittings"

    def sitting() -> str:
        done = run_cli(
            "train",
            [
                *TINY_LPD,
                "task_name=sat",
                f"paths.log_dir={tmp_path / 'logs'}",
                f"sitting_dir={sittings}",
                "sitting_steps=2",
                "+callbacks.recorder._target_=recorder.Recorder",
                f"+callbacks.recorder.path={tmp_path / 'sittings.jsonl'}",
            ],
            env=env,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        # the stream resumes mid-epoch (step 2 of 3 batches an epoch), and Lightning knows it
        assert "not resumable" not in done.stderr
        return done.stdout

    first = sitting()
    assert "sitting ended at step 2 of 4" in first
    saved = torch.load(sittings / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 2
    # stripped: what resuming reads, the data stream's state, and nothing else
    assert set(saved) <= {*RESUME_KEYS, "CTDataModule", "Precision", "callbacks"}
    assert saved["callbacks"] == {"NonFiniteGuard": {"skipped": 0, "consecutive": 0}}
    assert saved["CTDataModule"] == {"train_noise_batches": 2, "train_stream_next": 4}
    assert "combined_loader" not in saved["loops"]["fit_loop"]["state_dict"]  # empty: left out
    second = sitting()
    assert f"resuming from {sittings / 'last.ckpt'} (step 2)" in second
    last = torch.load(sittings / "last.ckpt", weights_only=True)
    run_folders = sorted((tmp_path / "logs" / "sat" / "runs").iterdir())
    assert len(run_folders) == 2
    ids = {json.loads((f / "run.json").read_text())["id"] for f in run_folders}
    assert len(ids) == 1  # one schedule, one run id
    # only the sitting that ends the schedule tests (its final weights, saved for the report)
    assert (run_folders[1] / "results.csv").is_file()
    assert not (run_folders[0] / "results.csv").exists()
    config = json.loads((run_folders[1] / "config.json").read_text())
    assert config["tested_checkpoint"] == "checkpoints/final.ckpt"
    final = torch.load(results.tested_checkpoint(run_folders[1], config), weights_only=True)
    assert trained_steps(final) == 4 and final.keys().isdisjoint({"optimizer_states"})
    for name, weight in last["state_dict"].items():
        torch.testing.assert_close(final["state_dict"][name], weight, rtol=0, atol=0)

    sys.path.insert(0, str(tmp_path))
    try:
        reference_dir = tmp_path / "reference"
        run_config(
            compose_config(
                "train",
                [
                    *TINY_LPD,
                    "test=false",
                    "+callbacks.recorder._target_=recorder.Recorder",
                    f"+callbacks.recorder.path={tmp_path / 'reference.jsonl'}",
                ],
                reference_dir,
            )
        )
    finally:
        sys.path.remove(str(tmp_path))
    reference = torch.load(reference_dir / "checkpoints" / "last.ckpt", weights_only=True)

    # the data stream: the same phantoms and noise at every step, and the same learning rates
    assert _recorded(tmp_path / "sittings.jsonl") == _recorded(tmp_path / "reference.jsonl")
    assert [r["index"] for r in _recorded(tmp_path / "reference.jsonl")] == [
        [0, 1],
        [2, 3],
        [4, 5],
        [6, 7],
    ]
    assert last["global_step"] == reference["global_step"] == 4
    assert last["CTDataModule"] == reference["CTDataModule"]
    assert last["lr_schedulers"] == reference["lr_schedulers"]
    assert last["lr_schedulers"][0]["last_epoch"] == 4 and last["lr_schedulers"][0]["T_max"] == 4
    for a, b in zip(
        last["optimizer_states"][0]["state"].values(),
        reference["optimizer_states"][0]["state"].values(),
        strict=True,
    ):
        assert int(a["step"]) == int(b["step"]) == 4
        torch.testing.assert_close(a["exp_avg"], b["exp_avg"], rtol=0, atol=0)
        torch.testing.assert_close(a["exp_avg_sq"], b["exp_avg_sq"], rtol=0, atol=0)
    assert last["state_dict"].keys() == reference["state_dict"].keys()
    for name, weight in reference["state_dict"].items():
        torch.testing.assert_close(last["state_dict"][name], weight, rtol=0, atol=0)


def test_a_sitting_refuses_a_checkpoint_of_other_settings_or_an_ended_schedule(
    tmp_path, compose_config
):
    from learnct.run.identity import run_settings
    from learnct.run.sittings import resolve_sitting

    cfg = compose_config(
        "train", [*TINY_LPD, f"sitting_dir={tmp_path}", "sitting_steps=2"], tmp_path
    )
    assert resolve_sitting(cfg) is None  # the first sitting
    stamp = {"id": "abc", "settings": run_settings(cfg)}
    torch.save({"global_step": 2, "learnct_run": stamp}, tmp_path / "last.ckpt")
    assert resolve_sitting(cfg) == tmp_path / "last.ckpt"
    other = compose_config(
        "train",
        [*TINY_LPD, f"sitting_dir={tmp_path}", "sitting_steps=2", "data.batch_size=3"],
        tmp_path,
    )
    with pytest.raises(ConfigError, match=r"other settings \(data.batch_size: 2 -> 3\)"):
        resolve_sitting(other)
    torch.save({"global_step": 4, "learnct_run": stamp}, tmp_path / "last.ckpt")
    with pytest.raises(ConfigError, match="has ended"):
        resolve_sitting(cfg)
    (tmp_path / "last.ckpt").write_bytes(b"version https://git-lfs.github.com/spec/v1\n")
    with pytest.raises(ConfigError, match=r"last.ckpt cannot be read .*git checkout"):
        resolve_sitting(cfg)


def test_sitting_steps_with_resume_is_refused(compose_config, run_config, tmp_path):
    cfg = compose_config("train", [*TINY_LPD, "sitting_steps=2", "resume=true"], tmp_path)
    with pytest.raises(
        ConfigError,
        match=r"sittings \(sitting_steps, sitting_minutes\) continue their own checkpoint",
    ):
        run_config(cfg)


def test_a_sitting_by_time_ends_at_the_step_that_passes_it(
    compose_config, run_config, tmp_path, capsys
):
    """``sitting_minutes`` alone: the sitting stops at the first step that ends past its time
    (here 6 microseconds: the first) and saves the resumable checkpoint; the same command
    continues it."""
    command = [*TINY_LPD, f"sitting_dir={tmp_path / 'sit'}", "sitting_minutes=1e-7", "test=false"]
    run_config(compose_config("train", command, tmp_path / "first"))
    assert "sitting ended at step 1 of 4" in capsys.readouterr().out
    assert torch.load(tmp_path / "sit" / "last.ckpt", weights_only=True)["global_step"] == 1
    run_config(compose_config("train", command, tmp_path / "second"))
    assert "sitting ended at step 2 of 4" in capsys.readouterr().out


INTERRUPTER = '''
import os
import signal
import lightning as L

class Interrupter(L.Callback):
    """At the end of step ``step``, before the sitting's own callback: raise (a crash) or send
    this process ``signal`` ``times`` times."""

    def __init__(self, step, signal=None, times=1):
        self.step, self.signal, self.times = step, signal, times

    def on_train_batch_end(self, trainer, *args):
        if trainer.global_step != self.step:
            return
        if self.signal is None:
            raise RuntimeError("killed")
        for _ in range(self.times):
            os.kill(os.getpid(), getattr(signal, self.signal))
'''


@pytest.fixture
def interrupter(tmp_path):
    """The overrides of a sitting with :data:`INTERRUPTER` (importable from ``tmp_path``); the
    process's SIGINT/SIGTERM handlers put back afterwards (Lightning ignores SIGINT after a
    KeyboardInterrupt)."""
    (tmp_path / "interrupter.py").write_text(INTERRUPTER)
    sys.path.insert(0, str(tmp_path))
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}

    def overrides(step: int, signal_name: str | None = None, times: int = 1) -> list[str]:
        return [
            "+callbacks.interrupter._target_=interrupter.Interrupter",
            f"+callbacks.interrupter.step={step}",
            f"+callbacks.interrupter.signal={signal_name or 'null'}",
            f"+callbacks.interrupter.times={times}",
        ]

    yield overrides
    sys.path.remove(str(tmp_path))
    sys.modules.pop("interrupter", None)
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


def test_a_killed_sitting_keeps_its_last_save_on_the_way(
    compose_config, run_config, tmp_path, capsys, interrupter
):
    """``sitting_save_minutes``: the sitting saves its checkpoint and curve on the way (here
    after every step) and goes on; killed at step 3, it keeps step 2, which the same command
    continues."""
    sit = tmp_path / "sit"
    command = [*TINY_LPD, f"sitting_dir={sit}", "sitting_steps=4", "test=false"]
    saving = [*command, "sitting_save_minutes=1e-7"]
    with pytest.raises(RuntimeError, match="killed"):
        run_config(compose_config("train", [*saving, *interrupter(3)], tmp_path / "first"))
    assert torch.load(sit / "last.ckpt", weights_only=True)["global_step"] == 2
    curve = (sit / "curve.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in curve[1:]] == ["2"]  # validated at step 2
    out = capsys.readouterr().out
    assert "sitting: step 1 saved" in out and "sitting: step 2 saved" in out
    run_config(compose_config("train", command, tmp_path / "second"))
    out = capsys.readouterr().out
    assert "(step 2)" in out and "sitting: step 4 saved" in out  # the schedule's end
    curve = (sit / "curve.csv").read_text().splitlines()
    assert [line.split(",")[0] for line in curve[1:]] == ["2", "4"]


def test_without_saves_on_the_way_a_killed_sitting_keeps_nothing(
    compose_config, run_config, tmp_path, interrupter
):
    sit = tmp_path / "sit"
    command = [*TINY_LPD, f"sitting_dir={sit}", "sitting_steps=4", "sitting_save_minutes=null"]
    with pytest.raises(RuntimeError, match="killed"):
        run_config(compose_config("train", [*command, *interrupter(3)], tmp_path))
    assert not (sit / "last.ckpt").exists()


@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_an_interrupt_saves_the_sitting_at_the_end_of_its_step(
    compose_config, run_config, tmp_path, capfd, interrupter, signal_name
):
    """Ctrl-C or SIGTERM: the sitting ends at the end of that step, saved, and cleanly (no
    test: the schedule has not ended); the handlers it replaced are back afterwards. What an
    earlier save killed half-way left in the folder is cleared."""
    sit = tmp_path / "sit"
    (sit / ".sitting-k1ll3d").mkdir(parents=True)
    (sit / ".sitting-k1ll3d" / "full.ckpt").write_bytes(b"half")
    (sit / ".last.ckpt.0123abcd.tmp").write_bytes(b"half")
    command = [*TINY_LPD, f"sitting_dir={sit}", "sitting_steps=4", "sitting_save_minutes=null"]
    before = signal.getsignal(getattr(signal, signal_name))
    run_config(compose_config("train", [*command, *interrupter(1, signal_name)], tmp_path))
    out, err = capfd.readouterr()
    assert f"{signal_name} received: saving and stopping" in err
    assert "sitting ended at step 1 of 4" in out
    assert torch.load(sit / "last.ckpt", weights_only=True)["global_step"] == 1
    assert signal.getsignal(getattr(signal, signal_name)) is before
    assert sorted(p.name for p in sit.iterdir()) == ["curve.csv", "last.ckpt"]


def test_a_forked_loader_worker_ignores_the_stop_signal(tmp_path):
    """Loader workers forked during a sitting inherit its handlers; a Ctrl-C reaches them too
    (the whole process group) and must neither stop them nor count as the sitting's signal."""
    import multiprocessing

    from learnct.run.sittings import SittingEnd

    def worker() -> None:
        os.kill(os.getpid(), signal.SIGINT)  # the default handler would raise here
        os._exit(3 if sitting.signal else 0)

    sitting = SittingEnd(1, tmp_path / "last.ckpt")
    sitting._catch_stop_signals()
    try:
        child = multiprocessing.get_context("fork").Process(target=worker)
        child.start()
        child.join(30)
    finally:
        sitting._release_signals()
    assert child.exitcode == 0 and sitting.signal is None


def test_a_second_interrupt_aborts_without_saving(
    compose_config, run_config, tmp_path, interrupter
):
    sit = tmp_path / "sit"
    command = [*TINY_LPD, f"sitting_dir={sit}", "sitting_steps=4", "sitting_save_minutes=null"]
    with pytest.raises(SystemExit):  # Lightning's graceful end of a KeyboardInterrupt
        run_config(compose_config("train", [*command, *interrupter(1, "SIGINT", 2)], tmp_path))
    assert not (sit / "last.ckpt").exists()


@pytest.mark.parametrize("key", ["sitting_minutes", "sitting_save_minutes"])
@pytest.mark.parametrize("minutes", ["0", "-1", "inf", "abc"])
def test_sitting_minutes_must_be_a_positive_number(
    compose_config, run_config, tmp_path, key, minutes
):
    cfg = compose_config("train", [*TINY_LPD, f"{key}={minutes}"], tmp_path)
    with pytest.raises(ConfigError, match=rf"{key}=.* is not valid"):
        run_config(cfg)


def test_sittings_need_the_schedules_length(compose_config, run_config, tmp_path):
    """Without ``trainer.max_steps`` a sitting stopped by time would read as a finished run."""
    overrides = [*TINY_LPD, "sitting_minutes=5", "trainer.max_steps=-1", "trainer.max_epochs=3"]
    with pytest.raises(ConfigError, match="sittings need the schedule's length"):
        run_config(compose_config("train", overrides, tmp_path))


def test_the_sittings_checkpoint_is_not_ignored_by_git():
    """It is kept in the repository between sittings (.gitignore ignores other checkpoints)."""

    def ignored(path: str) -> bool:
        done = subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO_ROOT, check=False)
        return done.returncode == 0

    assert not ignored(
        "experiments/parallel_ellipses/sittings/paper_lpd_parallel_ellipses/last.ckpt"
    )
    assert ignored("logs/lpd/runs/a/checkpoints/last.ckpt")


@pytest.mark.slow
def test_init_weights_starts_the_first_sitting_and_later_ones_continue(
    tmp_path, compose_config, run_config, capsys
):
    """A fine-tune in sittings: the first sitting loads ``init_weights``, the next continues
    its own checkpoint (whose weights it then holds) with the same command."""
    start_dir = tmp_path / "start"
    run_config(
        compose_config(
            "train",
            [*TINY_LPD, "trainer.max_steps=1", "trainer.val_check_interval=1", "test=false"],
            start_dir,
        )
    )
    start = start_dir / "checkpoints" / "last.ckpt"
    command = [
        *TINY_LPD,
        f"init_weights={start}",
        f"sitting_dir={tmp_path / 'sittings'}",
        "sitting_steps=2",
        "test=false",
    ]
    capsys.readouterr()
    run_config(compose_config("train", command, tmp_path / "first"))
    first = capsys.readouterr().out
    assert f"starting from the weights of {start} (steps trained: 1)" in first
    assert "sitting ended at step 2 of 4" in first
    run_config(compose_config("train", command, tmp_path / "second"))
    second = capsys.readouterr().out
    assert f"init_weights={start} started this run; continuing" in second
    assert "starting from the weights" not in second
    saved = torch.load(tmp_path / "sittings" / "last.ckpt", weights_only=True)
    assert saved["global_step"] == 4
    assert trained_steps(saved) == 5  # the start's step survives the sittings
    # ... and so does the weights' source: the one run of both sittings, from ``start``
    source = weights_source(saved)
    assert source["run_id"] == saved["learnct_run"]["id"]
    assert source["started_from"]["checkpoint"] == str(start)
    assert source["started_from"]["steps"] == 1
    # the schedule's final weights (saved weights-only: no callback writes into them) too
    final = torch.load(tmp_path / "second" / "checkpoints" / "final.ckpt", weights_only=True)
    assert weights_source(final) == source


def test_the_sittings_curve_keeps_every_sittings_validation_points(
    tmp_path, compose_config, run_config
):
    """``curve.csv`` beside the sittings checkpoint: each sitting adds its validation points
    (with the one Lightning runs when a sitting stops), so the schedule's curve survives its
    first sittings' run folders (gone here, as on another machine)."""
    import shutil

    from learnct.run.sittings import read_sitting_curve

    sittings = tmp_path / "sittings"
    overrides = [*TINY_LPD, f"sitting_dir={sittings}", "sitting_steps=2", "test=false"]
    overrides += ["trainer.val_check_interval=1"]
    run_config(compose_config("train", overrides, tmp_path / "first"))
    first = read_sitting_curve(sittings)
    assert [p["step"] for p in first] == ["1", "2"]  # after 1 and 2 steps
    shutil.rmtree(tmp_path / "first")
    run_config(compose_config("train", overrides, tmp_path / "second"))
    curve = read_sitting_curve(sittings)
    assert [p["step"] for p in curve] == ["1", "2", "3", "4"]
    assert curve[:2] == first  # kept from the file: their run folder is gone
    stamp = torch.load(sittings / "last.ckpt", weights_only=True)["learnct_run"]
    assert {p["run_id"] for p in curve} == {stamp["id"]}
    assert all(float(p["val_psnr"]) > 0 and 0 < float(p["val_ssim"]) <= 1 for p in curve)


@pytest.mark.slow
def test_a_ddp_sitting_saves_on_the_way_and_ends_on_every_rank_at_once(
    compose_config, run_config, tmp_path
):
    """Under DDP (2 CPU processes) rank 0's clock decides the saves and the end for both ranks
    (broadcast), so they save and stop at the same steps and the run ends."""
    sit = tmp_path / "sit"
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    command = [
        *TINY_LPD,
        *ddp,
        "trainer.strategy=ddp_fork",
        "data.batch_size=1",
        f"sitting_dir={sit}",
        "sitting_steps=3",
        "sitting_save_minutes=1e-7",
    ]
    run_config(compose_config("train", command, tmp_path / "run"))
    assert torch.load(sit / "last.ckpt", weights_only=True)["global_step"] == 3
