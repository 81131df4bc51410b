"""Test-wide settings (W&B disabled, fixed seeds, operator cache in a temporary folder) and the
one place the tests reach the run machinery: ``CONFIG_DIR``, ``run``, the fixtures that compose
a config (``compose_config``), run it in-process (``run_config``) or run the console entry
point in a subprocess (``run_cli``), and the small configs several tests share (``TINY_LGD``).
Names needed at collection time (parametrisation) are imported from here:
``from conftest import CONFIG_DIR``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from learnct.physics import FanBeamGeometry, RayTransform
from learnct.run import CONFIG_DIR, run

os.environ["WANDB_MODE"] = "disabled"
# Without a GPU the ``triton`` backend's kernels run in Triton's CPU interpreter, so the backend
# suite still checks them (at tiny sizes). Read when the kernels are first compiled.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

#: the repository checkout: where ``make`` and ``python -m learnct.train`` run
REPO_ROOT = CONFIG_DIR.parent
#: every ``make train EXP=<name>``
EXPERIMENTS = sorted(p.stem for p in (CONFIG_DIR / "experiment").glob("*.yaml"))
#: every ``make train EXP=paper/<name>``
PAPER_EXPERIMENTS = sorted(
    f"paper/{p.stem}" for p in (CONFIG_DIR / "experiment" / "paper").glob("*.yaml")
)
#: what ``compose_config`` puts before a test's overrides (which can replace it): CSV metrics,
#: no W&B run, no config tree printed
BASE_OVERRIDES = ("logger=csv", "extras.print_config=false")
#: LGD with one iteration on a few images: seconds per run on a CPU.
TINY_LGD = [
    "experiment=lgd",
    "model.n_iter=1",
    "data.batch_size=1",
    "data.eval_batch_size=2",
    "data.val_size=2",
    "data.test_size=2",
    "data.train_size=50",
    "logger=csv",
    "callbacks=default",
    "callbacks.progress_bar=null",
]

#: LPD with one iteration (the sittings tests): 3 steps per epoch (so the schedule crosses an
#: epoch boundary and the first sitting stops mid-epoch), 4 steps in all.
TINY_LPD = [
    "experiment=lpd",
    "model.n_iter=1",
    "data.batch_size=2",
    "data.eval_batch_size=2",
    "data.val_size=2",
    "data.test_size=2",
    "data.train_size=6",
    "trainer.max_steps=4",
    "trainer.val_check_interval=2",
    "logger=csv",
    "callbacks=default",
    "callbacks.progress_bar=null",
]
#: The small fan-beam geometry of the method, net and evaluation tests (32^2 pixels).
TINY_FAN = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48)


def _compose_config(
    config_name: str = "train",
    overrides: Sequence[str] = (),
    output_dir: str | Path | None = None,
    return_hydra_config: bool = False,
) -> DictConfig:
    """``configs/<config_name>.yaml`` composed as ``learnct-train``/``learnct-eval`` would with
    ``BASE_OVERRIDES``, ``paths.output_dir=<output_dir>`` (when given) and then ``overrides``
    (later ones win). ``return_hydra_config``: keep the ``hydra`` node (for ``HydraConfig``)."""
    paths = [] if output_dir is None else [f"paths.output_dir={output_dir}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(
            config_name,
            overrides=[*BASE_OVERRIDES, *paths, *overrides],
            return_hydra_config=return_hydra_config,
        )


def _run_cli(
    entry: str,
    args: Sequence[str],
    env: Mapping[str, str] | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess:
    """``python -m learnct.<entry> <args>`` (``entry``: ``train`` or ``evaluate``) from the
    repository root, as a user runs it (no base overrides), with W&B disabled unless ``env``
    says otherwise; stdout and stderr captured as text, the exit status not checked."""
    return subprocess.run(
        [sys.executable, "-m", f"learnct.{entry}", *args],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env={**os.environ, "WANDB_MODE": "disabled", **(env or {})},
        timeout=timeout,
        check=False,
    )


@pytest.fixture(scope="session")
def compose_config() -> Callable[..., DictConfig]:
    """``compose_config("train", ["experiment=lpd", ...], tmp_path) -> DictConfig``; see
    ``_compose_config``."""
    return _compose_config


@pytest.fixture(scope="session")
def run_config() -> Callable[[DictConfig], Any]:
    """learnct's ``run(cfg) -> RunResult``: train/evaluate/test a composed config in-process."""
    return run


@pytest.fixture(scope="session")
def run_cli() -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli("train", ["-m", "experiment=fbp", ...], env=..., timeout=...)``: the console
    entry point in a subprocess; see ``_run_cli``."""
    return _run_cli


@pytest.fixture(scope="session")
def operator() -> RayTransform:
    """The ray transform of ``TINY_FAN`` (a test module may define its own ``operator``)."""
    return RayTransform(TINY_FAN)


@pytest.fixture(autouse=True, scope="session")
def _operator_cache(tmp_path_factory: pytest.TempPathFactory):
    """Keep built operators out of the user's ~/.cache while testing."""
    old = os.environ.get("LEARNCT_CACHE_DIR")
    os.environ["LEARNCT_CACHE_DIR"] = str(tmp_path_factory.mktemp("operator-cache"))
    yield
    if old is None:
        os.environ.pop("LEARNCT_CACHE_DIR", None)
    else:
        os.environ["LEARNCT_CACHE_DIR"] = old


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
