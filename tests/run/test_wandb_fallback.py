"""W&B online mode without a reachable server or a login: the run goes on with offline
logging and says so, within seconds."""

from __future__ import annotations

import os
import socket
import threading
import time

import pytest
from lightning.pytorch.loggers import WandbLogger

from conftest import TINY_LGD
from learnct.run import ConfigError
from learnct.run.wandb_fallback import (
    reset_wandb,
    server_unreachable_reason,
    start_wandb_or_fallback,
    wandb_init_timeout,
)


@pytest.fixture
def online_without_login(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc login
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "home" / ".config" / "wandb"))
    monkeypatch.setenv("WANDB_SILENT", "true")
    reset_wandb()
    yield
    reset_wandb()


def test_unreachable_server_is_detected_quickly():
    start = time.perf_counter()
    reason = server_unreachable_reason("http://127.0.0.1:9", timeout=2.0)  # discard port
    assert reason is not None and "127.0.0.1:9" in reason
    assert time.perf_counter() - start < 3
    assert "no host name" in server_unreachable_reason("not a url", 1.0)


def test_run_with_unreachable_server_falls_back_to_offline(
    online_without_login, monkeypatch, tmp_path, capsys, compose_config, run_config
):
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")
    overrides = [o for o in TINY_LGD if o != "logger=csv"]
    cfg = compose_config(
        "train",
        [
            *overrides,
            "logger=wandb",
            "trainer.max_steps=1",
            "trainer.val_check_interval=1",
            "test=false",
        ],
        tmp_path,
    )
    start = time.perf_counter()
    result = run_config(cfg)
    assert time.perf_counter() - start < 120  # not wandb's 90 s init timeout and retries
    assert result.objective is not None
    err = capsys.readouterr().err
    assert "W&B online logging unavailable (cannot connect to 127.0.0.1:9" in err
    assert "falling back to offline logging" in err
    assert list((tmp_path / "wandb").glob("offline-run-*"))  # the offline run, for `wandb sync`
    assert os.environ["WANDB_MODE"] == "online"  # the process's next run tries online again


def test_reachable_server_without_login_falls_back_to_offline(
    online_without_login, monkeypatch, tmp_path, capsys
):
    listener = socket.create_server(("127.0.0.1", 0))  # accepts connections, answers nothing
    port = listener.getsockname()[1]
    threading.Thread(target=lambda: listener.accept(), daemon=True).start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    (logger,) = start_wandb_or_fallback(
        [WandbLogger(project="learnct", save_dir=str(tmp_path / "first"))],
        rebuild=lambda: [WandbLogger(project="learnct", save_dir=str(tmp_path))],
        timeout=2.0,
    )
    listener.close()
    assert os.environ["WANDB_MODE"] == "offline"
    assert "No API key configured" in capsys.readouterr().err
    assert logger.experiment.settings.mode == "offline"  # the rebuilt logger starts offline
    assert list((tmp_path / "wandb").glob("offline-run-*"))


def test_a_server_that_accepts_and_never_answers_costs_seconds(
    online_without_login, monkeypatch, tmp_path, capsys
):
    """With a login, wandb.init waits for the server: W&B's own init_timeout is 90 s (and more
    with its retries); learnct bounds it (here 2 s) and falls back to offline."""
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def accept_and_stay_silent():
        while True:
            try:
                accepted.append(listener.accept()[0])
            except OSError:  # closed
                return

    threading.Thread(target=accept_and_stay_silent, daemon=True).start()
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{listener.getsockname()[1]}")
    start = time.perf_counter()
    (logger,) = start_wandb_or_fallback(
        [WandbLogger(project="learnct", save_dir=str(tmp_path / "first"))],
        rebuild=lambda: [WandbLogger(project="learnct", save_dir=str(tmp_path))],
        timeout=2.0,
        init_timeout=2.0,
    )
    elapsed = time.perf_counter() - start
    listener.close()
    for connection in accepted:
        connection.close()
    assert len(accepted) >= 2  # the probe's connection, then wandb's, which waited for an answer
    assert elapsed < 20  # about 5 s; before: 90 s and more
    assert "W&B online logging unavailable (CommError" in capsys.readouterr().err
    assert os.environ["WANDB_MODE"] == "offline"
    assert logger.experiment.settings.mode == "offline"


def test_the_init_timeout_is_short_unless_wandb_init_timeout_says(monkeypatch):
    monkeypatch.delenv("WANDB_INIT_TIMEOUT", raising=False)
    assert wandb_init_timeout() == 15.0
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "2.5")
    assert wandb_init_timeout() == 2.5
    for bad in ("soon", "0", "-1", "inf"):
        monkeypatch.setenv("WANDB_INIT_TIMEOUT", bad)
        with pytest.raises(ConfigError) as err:
            wandb_init_timeout()
        assert str(err.value) == (
            f"WANDB_INIT_TIMEOUT={bad!r} is not valid: a positive number of seconds (unset: 15)"
        )


def test_reset_wandb_finishes_an_open_run(monkeypatch, tmp_path):
    """``reset_wandb`` passed ``quiet=True`` to ``wandb.finish``, which wandb 0.31 refuses: the
    error was swallowed and the run stayed open (the next logger reused it)."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    reset_wandb()
    run = wandb.init(project="learnct", dir=str(tmp_path))
    assert wandb.run is run
    reset_wandb()
    assert wandb.run is None
