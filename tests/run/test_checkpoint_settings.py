"""``make eval`` / ``init_weights`` build the method as its checkpoint stores it: the config's
defaults give way to the checkpoint's settings, and a setting given on the command line stays
(and is refused with the values that fit when it does not fit the weights)."""

from __future__ import annotations

import pytest

from conftest import REPO_ROOT
from learnct.run.checkpoint_settings import adopt_checkpoint_settings, resolve_checkpoint_names
from learnct.run.config_checks import ConfigError

FBPUNET = REPO_ROOT / "experiments" / "fan_lowdose" / "weights" / "FBPUNet.ckpt"
LPD = REPO_ROOT / "experiments" / "fan_lowdose" / "weights" / "LearnedPrimalDual.ckpt"


def test_the_checkpoint_settings_replace_the_config_defaults(compose_config):
    # a config (here: an experiment file's) that differs from the checkpoint gives way
    cfg = compose_config("eval", ["experiment=lpd", f"ckpt_path={LPD}", "model.n_iter=5"])
    notes = adopt_checkpoint_settings(cfg, user_keys=set())
    assert cfg.model.n_iter == 10
    assert notes == ["model.n_iter=10 from ckpt_path (the config had 5)"]
    # unless the user set it on the command line
    cfg = compose_config("eval", ["experiment=lpd", f"ckpt_path={LPD}", "model.n_iter=5"])
    assert adopt_checkpoint_settings(cfg, user_keys={"n_iter"}) == []
    assert cfg.model.n_iter == 5
    # training from init_weights takes them too; training from scratch does not
    cfg = compose_config("train", ["experiment=fbpunet", f"init_weights={FBPUNET}"])
    adopt_checkpoint_settings(cfg, user_keys=set())
    assert cfg.model.depth == 3
    cfg = compose_config("train", ["experiment=fbpunet"])
    assert adopt_checkpoint_settings(cfg, user_keys=set()) == [] and cfg.model.depth == 4
    # outside a Hydra run (no command line known) the config is taken as given
    cfg = compose_config("eval", ["experiment=fbpunet", f"ckpt_path={FBPUNET}"])
    assert adopt_checkpoint_settings(cfg) == [] and cfg.model.depth == 4


def test_a_committed_models_name_is_its_checkpoint_file(compose_config):
    cfg = compose_config("eval", ["experiment=lpd", "ckpt_path=lpd-fan_lowdose"])
    notes = resolve_checkpoint_names(cfg)
    assert cfg.ckpt_path == str(LPD) and notes == [
        f"ckpt_path=lpd-fan_lowdose is the committed model {LPD}"
    ]
    cfg = compose_config("train", ["experiment=fbpunet", "init_weights=fbpunet-fan_lowdose"])
    resolve_checkpoint_names(cfg)
    assert cfg.init_weights == str(FBPUNET)
    # a path is left to the checks that follow; a mistyped name lists the names
    cfg = compose_config("eval", ["experiment=lpd", "ckpt_path=some/where.ckpt"])
    assert resolve_checkpoint_names(cfg) == [] and cfg.ckpt_path == "some/where.ckpt"
    cfg = compose_config("eval", ["experiment=lpd", "ckpt_path=lpd-fanlowdose"])
    with pytest.raises(ConfigError, match=r"'lpd-fanlowdose' is neither.*'lpd-fan_lowdose'"):
        resolve_checkpoint_names(cfg)


def test_make_eval_of_the_committed_fbpunet_needs_no_architecture_override(run_cli, tmp_path):
    # by name (make eval EXP=fbpunet CKPT=fbpunet-fan_lowdose), with no model.depth override
    args = ["experiment=fbpunet", "ckpt_path=fbpunet-fan_lowdose", "data.val_size=2"]
    args += ["data.test_size=2", f"paths.output_dir={tmp_path}", "logger=csv"]
    args += ["extras.print_config=false"]
    out = run_cli("evaluate", args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "checkpoint settings: model.depth=3 from ckpt_path (the config had 4)" in out.stdout
    assert f"ckpt_path=fbpunet-fan_lowdose is the committed model {FBPUNET}" in out.stdout
    assert (tmp_path / "results.csv").is_file()
    out = run_cli("evaluate", [*args, "model.depth=4"])  # the user's own setting stays
    assert out.returncode == 2
    assert "does not fit this FBPUNet" in out.stderr and "model.depth=3" in out.stderr
