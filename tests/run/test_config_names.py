"""The light name lists that ``validate_config`` checks against equal the real registries, and a
config typo fails before torch is imported."""

from __future__ import annotations

import subprocess
import sys

from learnct import config_names
from learnct.data.sources import BUILDERS, SOURCES
from learnct.methods.base import LOSSES
from learnct.physics import FILTERS, PRESETS
from learnct.physics.backends import BACKENDS


def test_names_match_the_registries() -> None:
    assert set(config_names.PRESET_NAMES) == set(PRESETS)
    assert set(config_names.BACKEND_NAMES) == set(BACKENDS)
    assert set(config_names.LOSS_NAMES) == set(LOSSES)
    assert config_names.FILTERS is FILTERS
    assert config_names.SOURCES is SOURCES
    assert set(config_names.SOURCES) == set(BUILDERS)


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
