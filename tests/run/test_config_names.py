"""The light name lists that ``validate_config`` checks against equal the real registries, and a
config typo fails before torch is imported."""

from __future__ import annotations

import subprocess
import sys
from typing import get_args

import lightning as L
import pytest

from conftest import TINY_LGD
from learnct import config_names
from learnct.data.sources import BUILDERS, SOURCES, SYNTHETIC_SOURCES
from learnct.data.sources.folder import FITS
from learnct.methods.base import LOSSES
from learnct.physics import FILTERS, PRESETS
from learnct.physics.backends import BACKENDS
from learnct.physics.fbp import WINDOWS
from learnct.run.build import build_datamodule, build_method, build_physics, build_trainer
from learnct.run.config_checks import monitored_metric_names


def test_names_match_the_registries() -> None:
    assert set(config_names.PRESET_NAMES) == set(PRESETS)
    assert set(config_names.BACKEND_NAMES) == set(BACKENDS)
    assert set(config_names.LOSS_NAMES) == set(LOSSES)
    assert config_names.FILTERS is FILTERS
    assert tuple(WINDOWS) == FILTERS  # every filter name has its window, and no other
    assert config_names.SOURCES is SOURCES
    assert config_names.FOLDER_FITS is FITS
    assert set(config_names.SOURCES) == set(BUILDERS)
    # phantoms (made here) against scans (read from files): model cards warn on the first
    assert SYNTHETIC_SOURCES == {"ellipses", "shepp_logan", "ctlike"}


def test_precisions_are_lightnings() -> None:
    from lightning.fabric.connector import _PRECISION_INPUT

    lightning_names = [name for group in get_args(_PRECISION_INPUT) for name in get_args(group)]
    assert sorted(map(repr, config_names.PRECISIONS)) == sorted(map(repr, lightning_names))


class _FirstValidationMetrics(L.Callback):
    """The names in ``trainer.callback_metrics`` when the first validation ends."""

    def __init__(self) -> None:
        self.names: set[str] | None = None

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.names is None:
            self.names = set(trainer.callback_metrics)


@pytest.mark.parametrize("val_sources", [[], ["data.val_source=[ellipses,shepp_logan]"]])
def test_monitorable_metric_names_are_logged_by_the_first_validation(
    val_sources, tmp_path, compose_config
) -> None:
    """Every name ``validate_config`` lets a checkpoint callback monitor (or a sweep optimise)
    is a metric a training run has when its first validation, mid-epoch, ends."""
    cfg = compose_config(
        "train", [*TINY_LGD, "trainer.max_steps=1", "trainer.val_check_interval=1", *val_sources]
    )
    preset, operator = build_physics(cfg)
    spy = _FirstValidationMetrics()
    trainer = build_trainer(cfg, [], [spy], enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(build_method(cfg, operator), datamodule=build_datamodule(cfg, preset, operator))
    assert set(monitored_metric_names(cfg)) <= spy.names, spy.names
    assert "train/loss_epoch" not in spy.names  # mid-epoch: no epoch-end metrics yet


def test_config_typo_fails_before_torch_loads(tmp_path) -> None:
    """``learnct-train`` with a bad value exits 2 with a one-line message, torch never imported
    (its run folder goes to ``tmp_path``, not the repository's logs/)."""
    code = (
        "import sys, runpy\n"
        "sys.argv = ['learnct-train', 'experiment=lpd', 'physics.backend=sparce', "
        f"'hydra.run.dir={tmp_path}']\n"
        "try:\n"
        "    runpy.run_module('learnct.train', run_name='__main__')\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code, 'torch' in sys.modules, 'lightning' in sys.modules)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert "physics.backend='sparce'" in proc.stderr or "sparce" in proc.stderr, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "exit 2 False False", proc.stdout + proc.stderr
