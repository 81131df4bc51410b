"""The shared base: metrics, reconstruct, optimisers, and Lightning runs on CTBatch data."""

from __future__ import annotations

import functools
import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from conftest import TINY_FAN as GEOMETRY
from learnct.data import CTBatch, CTDataModule
from learnct.evaluation import per_image_psnr
from learnct.methods import FBP, LearnedPrimalDual
from learnct.physics import PhysicsPreset, RayTransform


def _batches(operator: RayTransform, n: int = 2, size: int = 2) -> list[CTBatch]:
    gen = torch.Generator().manual_seed(1)
    out = []
    for k in range(n):
        image = torch.rand(size, 1, 32, 32, generator=gen)
        clean = operator(image)
        noisy = clean + 0.1 * torch.randn(clean.shape, generator=gen)
        index = torch.arange(k * size, (k + 1) * size)
        out.append(CTBatch(image=image, sinogram=noisy, clean_sinogram=clean, index=index))
    return out


def _loader(batches: list[CTBatch]) -> DataLoader:
    return DataLoader(batches, batch_size=None)


def test_default_optimiser_and_cosine_schedule(operator):
    method = LearnedPrimalDual(operator, n_iter=1)
    trainer = L.Trainer(max_steps=50, accelerator="cpu", logger=False, enable_checkpointing=False)
    method.trainer = trainer
    config = method.configure_optimizers()
    opt = config["optimizer"]
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == 1e-3 and opt.defaults["betas"] == (0.9, 0.99)
    sched = config["lr_scheduler"]["scheduler"]
    assert isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
    assert sched.T_max == 50 and sched.eta_min == 0
    assert config["lr_scheduler"]["interval"] == "step"
    assert method.hparams.gradient_clip_val == 1.0


def test_partial_optimiser_and_scheduler_from_config(operator):
    method = LearnedPrimalDual(
        operator,
        n_iter=1,
        optimizer=functools.partial(torch.optim.SGD, lr=0.5),
        scheduler=functools.partial(torch.optim.lr_scheduler.CosineAnnealingLR),
    )
    method.trainer = L.Trainer(max_steps=7, accelerator="cpu", logger=False)
    config = method.configure_optimizers()
    assert isinstance(config["optimizer"], torch.optim.SGD)
    assert config["lr_scheduler"]["scheduler"].T_max == 7
    assert "operator" not in method.hparams
    none = LearnedPrimalDual(operator, n_iter=1, scheduler=None).configure_optimizers()
    assert isinstance(none, torch.optim.Adam)


def test_bad_config_names_the_key(operator):
    with pytest.raises(ValueError, match="loss"):
        LearnedPrimalDual(operator, loss="huber")
    with pytest.raises(ValueError, match="init"):
        LearnedPrimalDual(operator, init="random")
    with pytest.raises(ValueError, match="operator"):
        FBP("not an operator")


def test_fast_dev_run_fit_and_test_with_ctbatch_loaders(operator, tmp_path):
    method = LearnedPrimalDual(operator, n_iter=2)
    trainer = L.Trainer(
        fast_dev_run=True,
        accelerator="cpu",
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        gradient_clip_val=method.hparams.gradient_clip_val,
    )
    before = [p.detach().clone() for p in method.parameters()]
    trainer.fit(method, _loader(_batches(operator)), _loader(_batches(operator, 1)))
    assert any(not torch.equal(a, b) for a, b in zip(before, method.parameters(), strict=True))
    (result,) = trainer.test(method, _loader(_batches(operator, 2)), verbose=False)
    assert result["test/set_0/ms_per_slice"] > 0  # loaders without a CTDataModule: set_<i>
    assert math.isfinite(result["test/set_0/psnr"]) and 0 < result["test/set_0/ssim"] <= 1


def test_fbp_validates_and_tests_and_skips_training(operator, tmp_path):
    method = FBP(operator, filter="ram-lak")
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        default_root_dir=tmp_path,
        logger=L.pytorch.loggers.CSVLogger(tmp_path),
        enable_progress_bar=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )
    (val,) = trainer.validate(method, _loader(_batches(operator)), verbose=False)
    assert {"val/psnr", "val/ssim", "val/loss", "val/psnr_best"} <= set(val)
    batches = _batches(operator)
    expected = torch.stack(
        [per_image_psnr(method.reconstruct(b.sinogram), b.image) for b in batches]
    ).mean()
    assert val["val/psnr"] == pytest.approx(float(expected), rel=1e-4)
    assert list((tmp_path / "panels").glob("epoch0000_step*.png"))  # panels without W&B
    with pytest.warns(UserWarning, match="nothing to train"):
        trainer.fit(method, _loader(batches), _loader(batches[:1]))
    (test,) = trainer.test(method, _loader(batches), verbose=False)
    assert test["test/set_0/psnr"] == pytest.approx(float(expected), rel=1e-4)


def test_fast_dev_run_on_a_ct_datamodule(operator):
    preset = PhysicsPreset("tiny", GEOMETRY, photons=1e4)
    try:
        dm = CTDataModule(
            physics=preset, operator=operator, train_size=2, val_size=2, test_size=2, batch_size=2
        )
    except Exception as err:  # the DataModule is being finished in parallel
        pytest.skip(f"CTDataModule not usable here: {err}")
    method = LearnedPrimalDual(operator, n_iter=2)
    trainer = L.Trainer(
        fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False
    )
    trainer.fit(method, datamodule=dm)
    (result,) = trainer.test(method, datamodule=dm, verbose=False)
    # named by the DataModule's test set, also when it is the only one
    assert {f"test/ellipses/{m}" for m in ("psnr", "ssim", "ms_per_slice", "fbp_psnr")} <= set(
        result
    )
    assert math.isfinite(result["test/ellipses/psnr"])


def test_wandb_validation_panels_store_the_images_grey_levels(operator, tmp_path, monkeypatch):
    """What W&B writes for ``val/panels``: 8-bit PNGs spanning the grey range (float arrays in
    [0, 1] were cast to uint8 by wandb and stored black, pixel values 0 or 1)."""
    import numpy as np
    from matplotlib.image import imread

    from learnct.run.wandb_fallback import reset_wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    reset_wandb()  # W&B's process-wide settings may hold an earlier test's mode (disabled)
    logger = L.pytorch.loggers.WandbLogger(save_dir=tmp_path, offline=True, project="panels")
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        default_root_dir=tmp_path / "run",
        logger=logger,
        enable_progress_bar=False,
        enable_checkpointing=False,
    )
    trainer.validate(FBP(operator, filter="ram-lak", n_panels=1), _loader(_batches(operator)))
    logger.experiment.finish()
    pngs = sorted(tmp_path.rglob("media/images/val/panels_*.png"))
    assert len(pngs) == 3  # ground truth, reconstruction (FBP's own), error map
    # imread gives 8-bit PNGs as floats in [0, 1]
    levels = [np.atleast_3d(imread(p))[..., 0] * 255 for p in pngs]  # grey: one channel
    assert all(float(v.max() - v.min()) > 100 for v in levels)  # never black
    assert any(v.min() == 0 and v.max() == 255 for v in levels)  # the truth: its full range
    assert any(100 < float(np.median(v)) < 156 for v in levels)  # the error map: mid-grey
    # and the run folder keeps a PNG of the panels per validation (the dashboard's slider)
    (png,) = (tmp_path / "run" / "panels").glob("*.png")
    assert png.name == "epoch0000_step0000000.png" and imread(png).shape[0] > 100


def test_evaluation_means_weight_batches_by_size_and_keep_nan(operator):
    """A split's mean weights each batch by its images, and a NaN batch makes it NaN (torchmetrics
    would drop the batch, so a broken reconstruction would vanish from the results)."""
    metric = FBP(operator)._metric("test", "psnr", 0)
    metric(torch.tensor(1.0), 3)
    metric(torch.tensor(2.0), 1)
    assert metric.compute().item() == pytest.approx(1.25)
    metric(torch.tensor(float("nan")), 2)
    assert math.isnan(metric.compute().item())


def test_checkpoints_count_the_steps_of_the_weights_a_run_started_from(operator):
    """``learnct.steps_before`` + ``global_step``: the steps that trained a checkpoint's
    weights; a checkpoint that does not record ``steps_before`` (saved before it existed)
    leaves the count unknown, also for a run started from it, instead of counting 0."""
    from learnct.methods.checkpoints import apply_weights, trained_steps

    method = LearnedPrimalDual(operator, n_iter=1)
    method.steps_before = 300  # e.g. from init_weights
    saved = {"state_dict": method.state_dict(), "global_step": 1200}
    method.on_save_checkpoint(saved)
    assert saved["learnct"]["steps_before"] == 300 and trained_steps(saved) == 1500
    loaded = LearnedPrimalDual(operator, n_iter=1)
    loaded.on_load_checkpoint(saved)  # a test pass or a resume
    assert (loaded.steps_before, loaded.trained_steps) == (300, 1500)
    start = LearnedPrimalDual(operator, n_iter=1)
    assert apply_weights(start, saved, "x.ckpt") == 1500  # init_weights: a new run counts on
    assert (start.steps_before, start.trained_steps) == (1500, 1500)

    old = {**saved, "learnct": {k: v for k, v in saved["learnct"].items() if k != "steps_before"}}
    assert trained_steps(old) is None
    loaded.on_load_checkpoint(old)
    assert (loaded.steps_before, loaded.trained_steps) == (None, None)
    assert apply_weights(start, old, "old.ckpt") is None
    start.on_save_checkpoint(resaved := {"global_step": 10})
    assert trained_steps(resaved) is None  # still unknown, not 10


def test_a_resumed_run_keeps_its_best_validation_psnr(operator):
    """``val/psnr_best`` (a sweep's objective) is the best of the whole schedule, also across
    sittings: torchmetrics keeps ``MaxMetric``'s state out of checkpoints, so learnct saves it
    beside the method's identity and a resume (``optimizer_states``) restores it; a test pass
    or a warm start from the weights starts afresh."""
    method = LearnedPrimalDual(operator, n_iter=1)
    method.val_psnr_best(torch.tensor(35.25))
    method.val_psnr_best(torch.tensor(34.0))
    saved = {"state_dict": method.state_dict(), "global_step": 1200, "optimizer_states": [{}]}
    method.on_save_checkpoint(saved)
    assert saved["learnct"]["val_psnr_best"] == 35.25
    resumed = LearnedPrimalDual(operator, n_iter=1)
    resumed.on_load_checkpoint(saved)
    resumed.val_psnr_best(torch.tensor(33.0))  # the resumed run's first validation is worse
    assert resumed.val_psnr_best.compute().item() == 35.25
    tested = LearnedPrimalDual(operator, n_iter=1)
    tested.on_load_checkpoint({k: v for k, v in saved.items() if k != "optimizer_states"})
    assert tested.val_psnr_best.update_count == 0
    fresh = LearnedPrimalDual(operator, n_iter=1)
    fresh.on_save_checkpoint(unvalidated := {"global_step": 0})
    assert "val_psnr_best" not in unvalidated["learnct"]


@pytest.mark.parametrize("method", ["LearnedInverse", "LearnedPrimalDual", "FBPUNet", "FBP"])
def test_reconstruct_refuses_other_geometries_and_non_finite_sinograms_by_name(operator, method):
    """Every method, the fully learned net too (its dense layers failed deep in torch), and
    a NaN (FBP + U-Net and the fully learned net gave all-NaN images; LPD an error about an
    "image"); a model made float64 reconstructs (it was given float32 and failed)."""
    import learnct.methods as methods

    cls = getattr(methods, method)
    model = cls(operator) if method in ("FBP", "FBPUNet") else cls(operator, hidden=4)
    angles, detectors = GEOMETRY.sinogram_shape
    sinogram = operator(torch.rand(2, 1, 32, 32, generator=torch.Generator().manual_seed(0)))
    with pytest.raises(ValueError, match=rf"must be \(B, 1, {angles}, {detectors}\) for this"):
        model.reconstruct(sinogram[:, :, ::2])
    bad = sinogram.clone()
    bad[0, 0, 3, 4] = float("nan")
    with pytest.raises(ValueError, match="sinogram contains NaN or inf"):
        model.reconstruct(bad)
    expected = model.reconstruct(sinogram)
    # a model made float64 takes the sinogram in its dtype (it was cast to float32 for it)
    in_double = model.double().reconstruct(sinogram)
    torch.testing.assert_close(in_double.float(), expected, atol=1e-4, rtol=1e-4)
