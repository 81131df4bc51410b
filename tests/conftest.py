"""Test-wide settings: W&B disabled, fixed seeds, operator cache in a temporary folder."""

from __future__ import annotations

import os

import pytest
import torch

os.environ["WANDB_MODE"] = "disabled"
# Without a GPU the ``triton`` backend's kernels run in Triton's CPU interpreter, so the backend
# suite still checks them (at tiny sizes). Read when the kernels are first compiled.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")


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
