"""Bad config values fail before anything is built, with a message naming the key, the value
and what is allowed; the console entry point prints one line, not a traceback."""

from __future__ import annotations

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
    (["data.test_source=[ellipses,walnut]"], r"data.test_source names 'walnut'"),
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
]


@pytest.mark.parametrize(("overrides", "message"), BAD_VALUES)
def test_bad_values_name_the_key_value_and_allowed(overrides, message, tmp_path, compose_config):
    cfg = compose_config("train", overrides, tmp_path)
    with pytest.raises(ConfigError, match=message):
        validate_config(cfg)


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
    (tmp_path / "slices").mkdir()
    (tmp_path / "slices" / "x.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(DataError, match=r"x\.npy: is not a valid NumPy file"):
        run_config(
            compose_config(
                "train", [*base, f"data.folder_root={tmp_path / 'slices'}"], tmp_path / "b"
            )
        )
    assert not (tmp_path / "a" / "checkpoints").exists()


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
