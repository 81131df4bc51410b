"""Every checkpoint path is a local file checked (weights only) before anything loads it: a
URL, or a pickle that runs code, is refused with one line naming the key, and nothing in it
runs; FBP and TV refuse ``ckpt_path`` (they have no weights) instead of handing it to
Lightning."""

from __future__ import annotations

import functools
import http.server
import threading

import pytest
import torch

from learnct.methods.checkpoints import check_checkpoint
from learnct.run import ConfigError, build_physics

SMALL = ["data.val_size=2", "data.test_size=2", "data.batch_size=1"]


class _Payload:
    """Pickled, it is a call of ``open(marker, "w")``: loading it without ``weights_only``
    creates ``marker``."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


@pytest.fixture
def evil(tmp_path):
    """``(file, marker)``: a checkpoint whose unpickling creates ``marker``."""
    served = tmp_path / "served"
    served.mkdir()
    marker = tmp_path / "payload-ran"
    torch.save({"state_dict": {}, "payload": _Payload(marker)}, served / "evil.ckpt")
    return served / "evil.ckpt", marker


@pytest.fixture
def evil_url(evil, tmp_path, monkeypatch):
    """``(url, marker, requests)``: ``evil`` served over HTTP on localhost; ``requests``
    lists the paths asked for."""
    file, marker = evil
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # torch.hub's download cache
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(file.parent))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{file.name}", marker, requests
    server.shutdown()
    server.server_close()


def test_fbp_and_tv_refuse_a_checkpoint_url_without_fetching_it(
    evil_url, tmp_path, compose_config, run_config
):
    url, marker, requests = evil_url
    cfg = compose_config("eval", ["experiment=fbp", f"ckpt_path={url}", *SMALL], tmp_path / "a")
    with pytest.raises(ConfigError) as err:
        run_config(cfg)
    assert str(err.value) == (
        "ckpt_path: FBP has no weights to load (unset it: make eval EXP=<fbp|tv> needs no CKPT)"
    )
    assert not marker.exists() and requests == []
    cfg = compose_config(
        "train", ["experiment=tv", f"ckpt_path={url}", "model.iterations=2", *SMALL], tmp_path / "b"
    )
    with pytest.raises(ConfigError, match=r"^ckpt_path='http.* names a checkpoint to test"):
        run_config(cfg)
    assert not marker.exists() and requests == []


def test_fbp_refuses_a_local_checkpoint_file(evil, tmp_path, compose_config, run_config):
    file, marker = evil
    cfg = compose_config("eval", ["experiment=fbp", f"ckpt_path={file}", *SMALL], tmp_path)
    with pytest.raises(ConfigError, match=r"^ckpt_path: FBP has no weights to load \(unset it"):
        run_config(cfg)
    assert not marker.exists()


def test_learned_methods_refuse_checkpoint_urls(evil_url, tmp_path, compose_config, run_config):
    url, marker, requests = evil_url
    key = "ckpt_path"  # make eval's checkpoint (training refuses ckpt_path: resume continues)
    cfg = compose_config(
        "eval", ["experiment=lgd", "model.n_iter=1", f"{key}={url}", *SMALL], tmp_path
    )
    with pytest.raises(ConfigError) as err:
        run_config(cfg)
    assert str(err.value) == (
        f"{key}: {url} is a URL: checkpoints are only loaded from local files (download it, "
        "check where it comes from, and pass its path)"
    )
    assert not marker.exists() and requests == []
    # init_weights: the config check finds no such file (and load_weights refuses URLs too)
    cfg = compose_config("train", ["experiment=lgd", f"init_weights={url}", *SMALL], tmp_path)
    message = rf"^init_weights='{url}': no such checkpoint file or committed model "
    with pytest.raises(ConfigError, match=message):
        run_config(cfg)
    with pytest.raises(ValueError, match=r"is a URL: checkpoints are only loaded from local"):
        check_checkpoint(url, "LearnedGradientDescent", build_physics(cfg)[1].geometry)
    assert not marker.exists() and requests == []


def test_a_local_pickle_that_runs_code_is_refused_unrun(evil, tmp_path, compose_config, run_config):
    file, marker = evil
    for config, key in (("eval", "ckpt_path"), ("train", "init_weights")):
        cfg = compose_config(
            config, ["experiment=lgd", "model.n_iter=1", f"{key}={file}", *SMALL], tmp_path / key
        )
        with pytest.raises(ConfigError, match=rf"^{key}: checkpoint .*evil.ckpt is truncated or"):
            run_config(cfg)
    assert not marker.exists()


def test_lightning_loads_checkpoints_weights_only(
    tmp_path, compose_config, run_config, monkeypatch
):
    """The second guard: the paths handed to Lightning (resume, the checkpoint tested) are
    loaded weights-only by Lightning too."""
    import lightning as L

    calls = []
    for name in ("fit", "test"):
        real = getattr(L.Trainer, name)

        def spy(self, *args, _real=real, _name=name, **kwargs):
            calls.append((_name, kwargs.get("weights_only")))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(L.Trainer, name, spy)
    cfg = compose_config(
        "train",
        ["experiment=lgd", "model.n_iter=1", "trainer.fast_dev_run=true", "callbacks=none", *SMALL],
        tmp_path,
    )
    run_config(cfg)
    assert calls == [("fit", True), ("test", True)]


def test_a_folder_given_as_checkpoint_names_the_checkpoints_in_it(tmp_path):
    """``make eval CKPT=logs/lpd`` (a folder): said so, with the checkpoint files it holds,
    not that the path does not exist."""
    from learnct.methods.checkpoints import read_checkpoint

    (tmp_path / "runs" / "a" / "checkpoints").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt").write_bytes(b"")
    with pytest.raises(
        ValueError, match=r"is a folder: give a checkpoint file \(it holds "
    ) as info:
        read_checkpoint(tmp_path)
    assert str(tmp_path / "runs" / "a" / "checkpoints" / "last.ckpt") in str(info.value)
    with pytest.raises(ValueError, match=r"does not exist$"):
        read_checkpoint(tmp_path / "nothing.ckpt")
