"""``make eval`` / ``init_weights`` build the method as its checkpoint stores it: the config's
defaults give way to the checkpoint's settings, and a setting given on the command line stays
(and is refused with the values that fit when it does not fit the weights)."""

from __future__ import annotations

from conftest import REPO_ROOT
from learnct.run.checkpoint_settings import adopt_checkpoint_settings

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


def test_make_eval_of_the_committed_fbpunet_needs_no_architecture_override(run_cli, tmp_path):
    args = ["experiment=fbpunet", f"ckpt_path={FBPUNET}", "data.val_size=2", "data.test_size=2"]
    args += [f"paths.output_dir={tmp_path}", "logger=csv", "extras.print_config=false"]
    out = run_cli("evaluate", args)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "checkpoint settings: model.depth=3 from ckpt_path (the config had 4)" in out.stdout
    assert (tmp_path / "results.csv").is_file()
    out = run_cli("evaluate", [*args, "model.depth=4"])  # the user's own setting stays
    assert out.returncode == 2
    assert "does not fit this FBPUNet" in out.stderr and "model.depth=3" in out.stderr
