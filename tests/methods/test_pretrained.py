"""Committed models load by name from what their checkpoints store, with no overrides, and give
the numbers committed beside them; unknown names and other methods' checkpoints are refused
with the names to use."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from omegaconf import OmegaConf

import learnct
from learnct.evaluation import evaluate
from learnct.methods import FBPUNet, LearnedPrimalDual, ReconstructionMethod
from learnct.methods.checkpoints import read_checkpoint
from learnct.methods.pretrained import pretrained_models
from learnct.physics.geometry import geometry_from_record
from learnct.reporting.run_methods import reference_datamodule
from learnct.run import build_physics

MODELS = pretrained_models()


def test_the_committed_models_are_listed_by_method_and_setup():
    names = learnct.pretrained_names()
    assert "lpd-fan_lowdose" in names and "fbpunet-fan_lowdose" in names
    assert names == sorted(MODELS)
    with pytest.raises(ValueError, match=r"'nope' is neither.*lpd-fan_lowdose"):
        learnct.pretrained("nope")
    with pytest.raises(ValueError, match=r"model's name \(learnct.pretrained_names\(\)\).*int 3"):
        learnct.pretrained(3)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_committed_model_loads_by_name_as_its_checkpoint_stores_it(name):
    model = learnct.pretrained(name)
    checkpoint = read_checkpoint(MODELS[name].path)
    assert type(model).__name__ == checkpoint["learnct"]["method"]
    assert model.geometry == geometry_from_record(checkpoint["learnct"]["geometry"])
    for key, value in checkpoint["hyper_parameters"].items():
        assert model.hparams[key] == value, key
    assert not model.training
    for key, value in checkpoint["state_dict"].items():
        torch.testing.assert_close(model.state_dict()[key], value.to(model.state_dict()[key].dtype))


def test_the_fbpunet_checkpoint_builds_its_own_depth_not_the_config_default():
    model = FBPUNet.from_pretrained("fbpunet-fan_lowdose")
    assert model.hparams.depth == 3  # configs/model/fbpunet.yaml says 4
    with pytest.raises(ValueError, match="is a LearnedPrimalDual checkpoint, not FBPUNet"):
        FBPUNet.from_pretrained("lpd-fan_lowdose")
    assert isinstance(ReconstructionMethod.from_pretrained("lpd-fan_lowdose"), LearnedPrimalDual)


def test_a_committed_model_by_name_reproduces_its_check_row():
    """LPD on the 4 fixed Shepp-Logan test images of its ``check.csv``, with the data and
    physics of the ``config.json`` beside it."""
    folder = MODELS["lpd-fan_lowdose"].path.parent
    with open(folder / "check.csv", newline="") as fh:
        row = next(
            r
            for r in csv.DictReader(fh)
            if r["file"] == "LearnedPrimalDual.ckpt" and r["test_set"] == "shepp_logan"
        )
    n_images = int(row["n_images"])
    model = learnct.pretrained("lpd-fan_lowdose")
    cfg = OmegaConf.create(json.loads((folder / "config.json").read_text()))
    preset, operator = build_physics(cfg)
    datamodule = reference_datamodule(
        cfg, preset, operator, test_source=["shepp_logan"], test_size=n_images
    )
    scores = evaluate(model.reconstruct, datamodule, n_images)["shepp_logan"]
    assert scores.mean_psnr == pytest.approx(float(row["psnr"]), abs=0.05)
    assert scores.mean_ssim == pytest.approx(float(row["ssim"]), abs=1e-3)


def test_committed_models_load_channels_last_with_the_same_reconstruction():
    """The default layout of a loaded learned model is channels-last (faster on a CPU); its
    reconstruction equals the NCHW one to float rounding."""
    from learnct.methods.pretrained import load_pretrained

    fast = load_pretrained("lpd-fan_lowdose")
    plain = load_pretrained("lpd-fan_lowdose", channels_last=False)
    weight = fast.net.dual_blocks[0][2].weight
    assert weight.is_contiguous(memory_format=torch.channels_last) and not weight.is_contiguous()
    sinogram = fast.operator(torch.rand(2, 1, *fast.geometry.image_shape))
    torch.testing.assert_close(fast.reconstruct(sinogram), plain.reconstruct(sinogram))


def test_a_model_loads_eager_in_float32_whatever_it_trained_with(tmp_path):
    """A checkpoint trained with ``compile`` and bf16 ``autocast`` (execution flags, no weight
    depends on them) loads without them unless asked: bf16 is slow on CPUs without it and
    TorchInductor needs a C++ compiler."""
    from conftest import TINY_FAN
    from learnct.methods.pretrained import load_pretrained
    from learnct.physics import RayTransform

    trained = LearnedPrimalDual(RayTransform(TINY_FAN), n_iter=2, autocast="bf16", compile=True)
    checkpoint = {"state_dict": trained.state_dict(), "global_step": 3}
    checkpoint["hyper_parameters"] = dict(trained.hparams)
    trained.on_save_checkpoint(checkpoint)
    torch.save(checkpoint, tmp_path / "bf16.ckpt")
    loaded = load_pretrained(tmp_path / "bf16.ckpt")
    assert (loaded.hparams.autocast, loaded.hparams.compile) == (None, False)
    assert load_pretrained(tmp_path / "bf16.ckpt", autocast="bf16").hparams.autocast == "bf16"
