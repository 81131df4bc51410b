"""Bad config values fail before anything is built, with a message naming the key, the value
and what is allowed; the console entry point prints one line, not a traceback."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import EXPERIMENTS, TINY_LGD
from learnct.data.errors import DataError
from learnct.run import build_physics
from learnct.run.config_checks import ConfigError, validate_config

# (overrides, what the message must say): every one is caught by validate_config
BAD_VALUES = [
    (["seed=-1"], r"seed=-1 is not valid: it must be an integer >= 0"),
    (
        ["physics.preset=fan_low"],
        r"physics.preset='fan_low' is not valid: choose one of .*fan_lowdose",
    ),
    (
        ["physics.backend=gpu"],
        r"physics.backend='gpu' is not valid: choose one of .*'auto'.*'sparse'",
    ),
    (
        ["physics.n_angles=0"],
        r"physics.n_angles=0 is not valid: it must be an integer >= 1 or null",
    ),
    (["physics.image_size=1"], r"physics.image_size=1 is not valid: .* >= 2 or null"),
    (["physics.n_detectors=-4"], r"physics.n_detectors=-4 is not valid"),
    (["data.batch_size=0"], r"data.batch_size=0 is not valid: it must be an integer >= 1"),
    (["data.batch_size=2.5"], r"data.batch_size=2.5 is not valid"),
    (["data.eval_batch_size=0"], r"data.eval_batch_size=0 is not valid: .*>= 1 or null"),
    (["data.test_size=0"], r"data.test_size=0 is not valid"),
    (["data.num_workers=-1"], r"data.num_workers=-1 is not valid: it must be an integer >= 0"),
    (["data.source=mayo"], r"data.source='mayo' is not valid: choose one of .*ellipses"),
    (
        ["data=folder", "data.folder_fit=stretch"],
        r"data.folder_fit='stretch' is not valid: .*spacing",
    ),
    (
        ["data.test_source=[ellipses,walnut]"],
        r"data.test_source=\['ellipses', 'walnut'\] is not valid: 'walnut' is not a data source",
    ),
    (["data.val_source=[ellipses,ellipses]"], r"data.val_source=.* it names a source twice"),
    (["data.test_source=[]"], r"data.test_source=\[\] is not valid: name a source or a list"),
    (["data.val_source=5"], r"data.val_source=5 is not valid: name a source or a list"),
    (["model.loss=huber"], r"model.loss='huber' is not valid: choose one of \['l1', 'mse'"),
    (["experiment=fbp", "model.filter=hamming"], r"model.filter='hamming' is not valid: .*hann"),
    (["+model.fbp_filter=box"], r"model.fbp_filter='box' is not valid"),
    (["trainer.accelerator=gpus"], r"trainer.accelerator='gpus' is not valid: choose one of"),
    (
        ["trainer.max_steps=0"],
        r"trainer.max_steps=0 is not valid: it must be an integer >= 1, or -1",
    ),
    (["max_nonfinite_steps=0"], r"max_nonfinite_steps=0 is not valid"),
    (["resume=3"], r"resume=3 is not valid: use true, false or a run folder"),
    (["resume=true", "ckpt_path=a.ckpt"], r"resume=true and ckpt_path='a.ckpt' both say"),
    (
        ["ckpt_path=logs/lpd/runs/a/checkpoints/last.ckpt"],
        r"^ckpt_path='logs/lpd/runs/a/checkpoints/last.ckpt' names a checkpoint to test "
        r"\(train=false: make eval .*\), not one to train from: to continue a run use "
        r"resume=<its run folder>",
    ),
    (
        ["test_precision=bogus"],
        r"test_precision='bogus' is not valid: choose one of Lightning's precisions "
        r"\['transformer-engine', .*'32-true', '64-true'\] \(or its aliases \[64, 32, 16, "
        r"'64', '32', '16', 'bf16'\]\), or null$",
    ),
    (["trainer.precision=bf17"], r"trainer.precision='bf17' is not valid: choose one of"),
    (["trainer.precision=32.0"], r"trainer.precision=32.0 is not valid"),
    (
        ["model.optimizer.lr=abc"],
        r"^model.optimizer.lr='abc' is not valid: it must be a finite number >= 0 \(the "
        r"learning rate; the experiments use 1e-3\)$",
    ),
    (["model.optimizer.lr=-1"], r"^model.optimizer.lr=-1 is not valid: it must be a finite"),
    (["model.optimizer.lr=nan"], r"^model.optimizer.lr=nan is not valid"),
    (["model.optimizer.lr=true"], r"^model.optimizer.lr=True is not valid"),
    (
        ["model.optimizer.betas=[0.9,1.0]"],
        r"^model.optimizer.betas=\[0.9, 1.0\] is not valid: it must be two numbers in \[0, 1\)",
    ),
    (["model.optimizer.betas=[0.9]"], r"^model.optimizer.betas=\[0.9\] is not valid"),
    (
        ["+model.optimizer.weight_decay=-0.1"],
        r"^model.optimizer.weight_decay=-0.1 is not valid: it must be a finite number >= 0",
    ),
    (["+model.optimizer.eps=inf"], r"^model.optimizer.eps=inf is not valid"),
    (
        ["callbacks.model_checkpoint.monitor=val/psnrr"],
        r"^callbacks.model_checkpoint.monitor='val/psnrr' is not a metric the methods log: "
        r"choose one of \['train/loss', 'train/loss_step', 'val/loss', 'val/psnr', 'val/ssim', "
        r"'val/psnr_best'\]$",
    ),
    (["optimized_metric=test/psnr"], r"^optimized_metric='test/psnr' is not a metric the"),
    (
        ["data.val_source=[ellipses,shepp_logan]"],
        r"^optimized_metric='val/psnr' is not a metric .*'val/psnr/dataloader_idx_0', "
        r"'val/psnr/dataloader_idx_1'",
    ),
    (
        ["trainer.max_steps=2", "trainer.val_check_interval=5"],
        r"^trainer.val_check_interval=5 is more than trainer.max_steps=2: training would end "
        r"before its first validation and write no checkpoint; set trainer.val_check_interval "
        r"to at most 2$",
    ),
    (
        [
            "trainer.max_steps=2",
            "trainer.val_check_interval=7",
            "+trainer.accumulate_grad_batches=3",
        ],
        r"^trainer.val_check_interval=7 is more than trainer.max_steps=2 x "
        r"trainer.accumulate_grad_batches=3 batches: .* at most 6$",
    ),
    (
        ["task_name=../../x"],
        r"^task_name='../../x' is not valid: it names the run folder logs/<task_name>/, so it "
        r"must be one folder name",
    ),
    (["task_name=.."], r"^task_name='..' is not valid"),
    (["task_name=a/b"], r"^task_name='a/b' is not valid"),
    (["test=maybe"], r"^test='maybe' is not valid: use true or false$"),
    (
        ["trainer.devices=2"],
        r"^trainer.devices=2 on the CPU \(2 processes\) needs forked workers: add "
        r"\+trainer.strategy=ddp_fork",
    ),
    (
        ["trainer=ddp", "trainer.accelerator=cpu"],
        r"^trainer.devices=-1 is not valid on the CPU: give a number of processes",
    ),
    (
        ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=3"],
        r"^trainer.devices=3 on the CPU \(3 processes\) needs forked workers",
    ),
    (["train=1"], r"^train=1 is not valid: use true or false$"),
]

# values next to the bad ones above that must still validate
GOOD_VALUES = [
    ["test_precision=null"],
    ["test_precision=16-mixed", "trainer.precision=32"],
    ["trainer.precision=bf16"],
    ["model.optimizer.lr=0.0", "+model.optimizer.weight_decay=1e-4"],
    ["callbacks.model_checkpoint.monitor=val/psnr_best", "optimized_metric=train/loss"],
    ["optimized_metric=null"],
    [
        "data.val_source=[ellipses,shepp_logan]",
        "optimized_metric=val/psnr/dataloader_idx_1",
        "callbacks.model_checkpoint.monitor=val/ssim/dataloader_idx_0",
    ],
    ["trainer.max_steps=2", "trainer.val_check_interval=2"],
    ["trainer.max_steps=2", "trainer.val_check_interval=0.5"],  # a fraction of an epoch
    ["trainer.max_steps=-1", "trainer.val_check_interval=500"],
    ["trainer.max_steps=2", "trainer.val_check_interval=5", "train=false"],
    ["trainer.max_steps=2", "trainer.val_check_interval=6", "+trainer.accumulate_grad_batches=3"],
    ["trainer.max_steps=2", "trainer.val_check_interval=5", "trainer.fast_dev_run=true"],
    ["task_name=lgd_v2.1"],
    ["test=false", "train=true"],
    ["trainer.devices=2", "+trainer.strategy=ddp_fork"],
    ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp_fork"],
    ["trainer.devices=auto"],
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES)
def test_bad_values_name_the_key_value_and_allowed(overrides, message, tmp_path, compose_config):
    cfg = compose_config("train", overrides, tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


@pytest.mark.parametrize("overrides", GOOD_VALUES)
def test_good_values_next_to_the_bad_ones_validate(overrides, tmp_path, compose_config):
    validate_config(compose_config("train", overrides, tmp_path))


def test_default_and_every_experiment_config_validate(tmp_path, compose_config):
    for name in EXPERIMENTS:
        validate_config(compose_config("train", [f"experiment={name}"], tmp_path))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.n_iter=0"], r"^model: .*n_iter.* \(check the model\.\* settings\)"),
        (["data.supersample=0"], r"^data: .*supersample"),
        (["trainer.val_check_interval=-3"], r"^trainer: .*val_check_interval"),
    ],
)
def test_component_checks_are_reported_as_config_errors(
    overrides, message, tmp_path, compose_config, run_config
):
    """What only the components check (when built) comes back as a ConfigError of its group,
    before any training step."""
    cfg = compose_config("train", [*TINY_LGD, *overrides], tmp_path)
    with pytest.raises(ConfigError, match=message):
        run_config(cfg)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["physics.photons=-5"], r"^physics: photons=-5 is not valid: it must be a positive"),
        (["physics.photons=0"], r"^physics: photons=0 is not valid"),
        (["physics.photons=lots"], r"^physics: photons='lots' is not valid"),
        (["physics.photons=inf"], r"^physics: photons=inf is not valid"),
        (
            ["physics.photons=1e300"],
            r"^physics: photons=1e\+300 is not valid: it must be from 1 to 1e\+09 photons per "
            r"detector pixel",
        ),
        (["physics.photons=1e-300"], r"^physics: photons=1e-300 is not valid: .* from 1 to"),
        (["physics.photons=0.5"], r"^physics: photons=0.5 is not valid: .* from 1 to"),
        (
            ["physics=parallel_ellipses", "physics.photons=1000"],
            r"^physics: photons only applies to Poisson presets; 'parallel_ellipses' uses gauss",
        ),
    ],
)
def test_photons_are_checked_once_by_the_preset(overrides, message, tmp_path, compose_config):
    """``physics.photons`` is checked where it is used (``PhysicsPreset``), and comes back
    as a ConfigError of the physics group naming the key."""
    with pytest.raises(ConfigError, match=message):
        build_physics(compose_config("train", overrides, tmp_path))


def test_geometry_overrides_are_checked_by_the_geometry(tmp_path, compose_config):
    preset, operator = build_physics(compose_config("train", ["physics.n_angles=60"], tmp_path))
    assert preset.geometry.n_angles == 60 and operator.geometry == preset.geometry
    with pytest.raises(
        ConfigError, match=r"^physics: n_detectors=64 on the fan_lowdose geometry: "
    ):
        build_physics(
            compose_config("train", ["physics.n_detectors=64"], tmp_path)
        )  # misses the image
    with pytest.raises(
        ConfigError,
        match=r"^physics: image_size=512 on the fan_lowdose geometry: source_radius = 500 mm lies "
        r"inside the image",
    ):
        build_physics(compose_config("train", ["physics.image_size=512"], tmp_path))


def test_missing_or_broken_data_fail_before_training_naming_the_file(
    tmp_path, compose_config, run_config
):
    base = ["experiment=lgd", "data=folder", "data.num_workers=0", "logger=csv"]
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        run_config(
            compose_config(
                "train", [*base, f"data.folder_root={tmp_path / 'nowhere'}"], tmp_path / "a"
            )
        )
    slices = tmp_path / "slices" / "train"  # a folder with the training split's subfolder
    slices.mkdir(parents=True)
    (slices / "x.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"x\.npy: is not a valid NumPy file"):
        run_config(
            compose_config(
                "train", [*base, f"data.folder_root={tmp_path / 'slices'}"], tmp_path / "b"
            )
        )
    (slices / "x.npy").unlink()
    np.save(slices / "t.npy", np.zeros((16, 16), np.float32))
    (slices / "t.npy").write_bytes((slices / "t.npy").read_bytes()[:-100])
    with pytest.raises(DataError, match=r"t\.npy: truncated \(its header says \(16, 16\)"):
        run_config(
            compose_config(
                "train", [*base, f"data.folder_root={tmp_path / 'slices'}"], tmp_path / "c"
            )
        )
    for run in "abc":
        assert not (tmp_path / run / "checkpoints").exists()


def test_data_error_in_a_dataloader_worker_is_one_line_with_status_2(tmp_path, run_cli):
    """A slice whose problem shows only when its pixels are read, in a DataLoader worker:
    ``learnct-train`` prints the worker's one-line message, not torch's re-raise with the
    worker's traceback."""
    for split in ("val", "test"):  # FBP's run validates, then tests
        (tmp_path / "slices" / split).mkdir(parents=True)
    np.save(tmp_path / "slices" / "test" / "fine.npy", np.ones((16, 16), np.float32))
    image = np.ones((16, 16), np.float32)
    image[2, 3] = np.nan
    np.save(tmp_path / "slices" / "val" / "nan.npy", image)
    overrides = [
        f"hydra.run.dir={tmp_path / 'run'}",
        "experiment=fbp",
        "data=folder",
        f"data.folder_root={tmp_path / 'slices'}",
        "data.num_workers=1",
        "logger=none",
    ]
    out = run_cli("train", overrides, timeout=300)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path / 'slices' / 'val' / 'nan.npy'}: contains NaN or infinite values"
    )
    # the run had begun (its validation): a failed run, not a refused command, so its folder
    # and job log stay although it wrote no logger or checkpoint files
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        ".hydra",
        "config_tree.log",
        "run.json",
        "train.log",
    ]


def test_unknown_config_group_option_lists_the_valid_ones_without_a_traceback(tmp_path, run_cli):
    out = run_cli("train", [f"hydra.run.dir={tmp_path}", "model=lpdd"], timeout=300)
    assert out.returncode != 0
    assert "Could not find 'model/lpdd'" in out.stderr
    assert all(f"\t{name}\n" in out.stderr for name in ("fbp", "lgd", "lpd", "tv"))
    assert "Traceback" not in out.stderr


def test_bad_value_on_the_command_line_is_one_line_with_status_2(tmp_path, run_cli):
    overrides = [f"hydra.run.dir={tmp_path}", "data.batch_size=0", "logger=csv"]
    out = run_cli("train", overrides, timeout=300)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "error: data.batch_size=0 is not valid: it must be an integer >= 1"
    )
    assert not tmp_path.exists()  # the refused run's folder (hydra.run.dir) holds nothing
    mine = tmp_path / "mine"  # a hydra.run.dir with files of its own: left whole
    mine.mkdir(parents=True)
    (mine / "notes.log").write_text("mine")
    out = run_cli("train", [f"hydra.run.dir={mine}", "data.batch_size=0"], timeout=300)
    assert out.returncode == 2 and (mine / "notes.log").read_text() == "mine"
    assert (mine / ".hydra").is_dir()


def test_a_bad_task_name_never_makes_a_folder_outside_logs(tmp_path, run_cli):
    """Hydra makes the run folder before any check runs: a name that is not one folder name
    goes to ``logs/invalid_task_name/``, and the check refuses it in one line (and removes
    that folder)."""
    root = tmp_path / "root"
    out = run_cli("train", ["task_name=../../x"], env={"LEARNCT_ROOT": str(root)})
    assert out.returncode == 2, out.stderr[-2000:]
    assert out.stderr.strip().splitlines()[-1].startswith("error: task_name='../../x' is not")
    assert not (tmp_path / "x").exists()  # logs/../../x
    # the folder Hydra made (logs/invalid_task_name/runs/<date>/) is gone with the refusal:
    # no run left for the dashboard or resume=true to find
    assert list((root / "logs").iterdir()) == []


def test_model_mu_must_be_the_physics_attenuation():
    """TV-WLS's and the dose-aware LPD's weights exp(-mu g) need the physics' mu."""
    from omegaconf import OmegaConf

    from learnct.run.config_checks import check_model_attenuation

    cfg = OmegaConf.create({"model": {"mu": 0.02}})
    check_model_attenuation(cfg, 0.02, "fan_lowdose")  # equal: fine
    check_model_attenuation(OmegaConf.create({"model": {}}), 0.08, "lodopab")  # no mu: fine
    with pytest.raises(ConfigError, match=r"model.mu=0.02 differs .* 'lodopab' .* model.mu=0.08"):
        check_model_attenuation(cfg, 0.08, "lodopab")
