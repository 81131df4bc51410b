"""The pretrained weights in ``experiments/<setup>/weights/`` still give the numbers committed
beside them (``check.csv``, written by ``make report WEIGHTS=1``): weights, code and table
cannot drift apart unnoticed."""

from __future__ import annotations

import pytest

from conftest import REPO_ROOT
from learnct.reporting.weights import verify_weights

FOLDERS = sorted(p.parent for p in (REPO_ROOT / "experiments").glob("*/weights/check.csv"))


@pytest.mark.slow
@pytest.mark.parametrize("folder", FOLDERS, ids=[f.parent.name for f in FOLDERS])
def test_committed_weights_reproduce_their_table(folder):
    checked = verify_weights(folder)
    assert checked, f"{folder}/check.csv lists no checkpoint"
    for row, psnr, ssim in checked:
        where = f"{row['file']} on {row['test_set']}"
        assert psnr == pytest.approx(float(row["psnr"]), abs=0.5), where
        assert ssim == pytest.approx(float(row["ssim"]), abs=0.01), where
