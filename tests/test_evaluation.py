"""Evaluation: per-image PSNR/SSIM (data range of each truth), the loop over the test sets (the
same numbers as the LightningModule's test step), and the one figure renderer."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import default_collate
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from conftest import TINY_FAN as GEOMETRY
from learnct.data import CTDataModule
from learnct.evaluation import (
    Slice,
    evaluate,
    panel_figure,
    per_image_psnr,
    per_image_ssim,
    score,
    simulate_test_sets,
    write_run_figure,
)
from learnct.methods import FBP
from learnct.physics import PhysicsPreset, RayTransform


def _datamodule(operator: RayTransform, test_size: int = 3) -> CTDataModule:
    dm = CTDataModule(
        physics=PhysicsPreset("tiny", GEOMETRY, photons=1e4),
        operator=operator,
        test_source=["ellipses", "shepp_logan"],
        train_size=2,
        val_size=2,
        test_size=test_size,
        batch_size=2,
        eval_batch_size=2,
    )
    dm.setup("test")
    return dm


# ---- metrics ------------------------------------------------------------------------------------
def test_psnr_of_a_constant_offset_is_20_log10_range_over_offset():
    ramp = torch.linspace(0.0, 2.0, 16 * 16).reshape(1, 16, 16)
    truth = torch.stack([ramp, 3 * ramp])  # ranges 2 and 6: each image's own range counts
    offset = torch.tensor([0.01, 0.2])[:, None, None, None]
    ranges = truth.flatten(1).amax(1) - truth.flatten(1).amin(1)
    expected = 20 * torch.log10(ranges / offset.flatten())
    torch.testing.assert_close(per_image_psnr(truth + offset, truth), expected, rtol=1e-5, atol=0)
    assert float(expected[0]) == pytest.approx(20 * math.log10(2.0 / 0.01), rel=1e-6)  # 46.02 dB


def test_ssim_of_identical_images_is_one_and_of_a_scaled_pair_unchanged():
    gen = torch.Generator().manual_seed(0)
    image = torch.rand(2, 1, 24, 24, generator=gen)
    torch.testing.assert_close(per_image_ssim(image, image), torch.ones(2))
    noisy = image + 0.1 * torch.randn(image.shape, generator=gen)
    value = per_image_ssim(noisy, image)
    assert float(value.max()) < 0.95
    torch.testing.assert_close(per_image_ssim(100 * noisy, 100 * image), value, rtol=1e-4, atol=0)


def test_per_image_metrics_match_torchmetrics_with_each_images_range():
    gen = torch.Generator().manual_seed(0)
    target = (
        torch.rand(3, 1, 24, 24, generator=gen) * torch.tensor([1.0, 2.0, 5.0])[:, None, None, None]
    )
    preds = target + 0.05 * torch.randn(target.shape, generator=gen)
    psnr = per_image_psnr(preds, target)
    ssim = per_image_ssim(preds, target)
    for i in range(3):
        r = float(target[i].max() - target[i].min())
        expected = peak_signal_noise_ratio(preds[i : i + 1], target[i : i + 1], data_range=r)
        torch.testing.assert_close(psnr[i], expected, rtol=1e-4, atol=1e-4)
        expected = structural_similarity_index_measure(
            preds[i : i + 1], target[i : i + 1], data_range=r, gaussian_kernel=False, kernel_size=7
        )
        torch.testing.assert_close(ssim[i], expected, rtol=1e-4, atol=1e-4)


# ---- the loop -----------------------------------------------------------------------------------
def test_loop_averages_the_per_image_values_and_agrees_with_the_test_step(operator):
    dm = _datamodule(operator)
    method = FBP(operator, filter="hann")
    scores = evaluate(method.reconstruct, dm)
    assert list(scores) == ["ellipses", "shepp_logan"]
    # one image at a time, straight from each test data set
    for idx, name in enumerate(dm.sources["test"]):
        dataset = dm.datasets["test"][idx]
        values = []
        for i in range(len(dataset)):
            batch = dm.simulate(default_collate([dataset[i]]))
            values.append(float(per_image_psnr(method.reconstruct(batch.sinogram), batch.image)))
        assert scores[name].n_images == 3
        torch.testing.assert_close(scores[name].psnr, torch.tensor(values), rtol=1e-5, atol=1e-4)
        assert scores[name].mean_psnr == pytest.approx(sum(values) / 3, rel=1e-6)
    trainer = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False)
    results = trainer.test(method, datamodule=dm, verbose=False)
    logged = {k: v for result in results for k, v in result.items()}
    assert not [k for k in logged if "dataloader_idx" in k]  # named by test set instead
    for name in dm.sources["test"]:
        assert logged[f"test/{name}/psnr"] == pytest.approx(scores[name].mean_psnr)
        assert logged[f"test/{name}/ssim"] == pytest.approx(scores[name].mean_ssim)


def test_loop_stops_after_n_images_and_keeps_the_first(operator):
    dm = _datamodule(operator)
    method = FBP(operator)
    all_batches = simulate_test_sets(dm)
    assert [len(b) for b in all_batches.values()] == [2, 2]  # 3 images in batches of 2
    first = simulate_test_sets(dm, n_images=1, names=["shepp_logan"])
    assert list(first) == ["shepp_logan"] and len(first["shepp_logan"]) == 1
    full = score(method.reconstruct, all_batches["shepp_logan"])
    one = evaluate(method.reconstruct, dm, n_images=1)["shepp_logan"]
    assert one.n_images == 1 and full.n_images == 3
    assert one.mean_psnr == pytest.approx(float(full.psnr[0]))


# ---- the renderer -------------------------------------------------------------------------------
def _image_axes(fig) -> list:
    return [ax for ax in fig.axes if ax.images]


def test_panel_figure_rows_per_slice_error_scale_and_titles():
    truth = torch.linspace(0.0, 2.0, 32 * 32).reshape(32, 32)
    slices = [
        Slice(truth, [("FBP", truth + 0.1), ("method", truth - 0.02)], label="ellipses"),
        Slice(truth, [("FBP", truth + 0.05), ("method", truth + 0.05)], label="shepp_logan"),
    ]
    fig = panel_figure(slices)
    # per slice: an image row (truth + 2) and an error row (2 maps; the truth's cell is text)
    assert len(_image_axes(fig)) == 2 * (3 + 2)
    assert len(fig.axes) == 2 * 2 * 3 + 2 * 2  # a 4 x 3 grid, two colour bars per slice
    grid = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    titles = [ax.get_title() for ax in grid]
    assert titles[0] == "ellipses: ground truth" and titles[6] == "shepp_logan: ground truth"
    assert titles[1].startswith(f"FBP\n{20 * math.log10(2 / 0.1):.2f} dB, SSIM 0.9")  # 26.02 dB
    # each slice's error maps share one scale: the 95th percentile of its |errors|
    assert grid[4].images[0].get_clim() == pytest.approx((-0.1, 0.1), rel=1e-4)
    assert grid[5].images[0].get_clim() == pytest.approx((-0.1, 0.1), rel=1e-4)
    assert grid[10].images[0].get_clim() == pytest.approx((-0.05, 0.05), rel=1e-4)


def _colour_bar(row):
    """The one colour bar drawn for the images of the axes ``row``."""
    (bar,) = {im.colorbar for ax in row for im in ax.images if im.colorbar is not None}
    return bar


def test_panel_figure_zoom_row_and_window():
    """The window sets the grey range of the full images and of the zooms (the report's
    ``--window``); without it the zooms use the grey range of the truth's crop."""
    truth = torch.linspace(0.0, 2.0, 32 * 32).reshape(32, 32)
    recons = [("FBP", truth + 0.01), ("TV", truth), ("LPD", truth - 0.01)]
    fig = panel_figure([Slice(truth, recons)], window=(0.8, 1.2), zoom=(4, 8, 8), title="t")
    assert len(_image_axes(fig)) == 4 + 3 + 4  # images, errors, zooms
    grid = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    assert [ax.images[0].get_clim() for ax in grid[:4]] == [(0.8, 1.2)] * 4
    assert [ax.images[0].get_clim() for ax in grid[8:12]] == [(0.8, 1.2)] * 4
    assert _colour_bar(grid[8:12]).mappable.get_clim() == (0.8, 1.2)
    assert grid[8].images[0].get_array().shape == (8, 8)
    grid = [
        ax
        for ax in panel_figure([Slice(truth, recons)], zoom=(4, 8, 8)).axes
        if ax.get_subplotspec() is not None
    ]
    crop = truth[4:12, 8:16]
    pad = 0.1 * float(crop.max() - crop.min())
    zoom_clim = grid[8].images[0].get_clim()
    assert zoom_clim == pytest.approx((float(crop.min()) - pad, float(crop.max()) + pad))
    with pytest.raises(ValueError, match="lo < hi"):
        panel_figure([Slice(truth, recons)], window=(1.2, 0.8))


def test_panel_figure_has_a_grey_bar_in_image_units_and_an_error_bar():
    """A run's ``comparison.png``: the image row has a grey colour bar over the display window
    (in image units), the error row one over the symmetric error scale."""
    truth = torch.linspace(0.0, 2.0, 32 * 32).reshape(32, 32)
    for window, grey in ((None, (0.0, 2.0)), ((0.8, 1.2), (0.8, 1.2))):
        fig = panel_figure([Slice(truth, [("FBP", truth + 0.1)])], window=window)
        grid = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
        image_bar, error_bar = _colour_bar(grid[:2]), _colour_bar(grid[2:])  # one per row
        assert image_bar.mappable.get_clim() == pytest.approx(grey)
        assert image_bar.mappable.get_cmap().name == "gray"
        assert image_bar.ax.get_ylabel() == "image (attenuation, normalised)"
        assert error_bar.mappable.get_clim() == pytest.approx((-0.1, 0.1), rel=1e-4)
        assert error_bar.ax.get_ylabel() == "error f - f_true"
        assert {image_bar.ax, error_bar.ax} <= set(fig.axes)


def test_write_run_figure_draws_one_group_of_rows_per_test_set(operator, tmp_path, monkeypatch):
    import learnct.evaluation as evaluation

    figures = []
    real = evaluation.panel_figure
    monkeypatch.setattr(evaluation, "panel_figure", lambda s, **kw: figures.append(s) or real(s))
    dm = _datamodule(operator, test_size=1)
    path = write_run_figure(FBP(operator), dm, tmp_path / "run")
    assert path == tmp_path / "run" / "comparison.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (slices,) = figures
    assert [s.label for s in slices] == ["ellipses", "shepp_logan"]
    assert [[name for name, _ in s.reconstructions] for s in slices] == [["FBP", "FBP"]] * 2
    batch = simulate_test_sets(dm)["shepp_logan"][0]
    torch.testing.assert_close(slices[1].truth, batch.image[0, 0])
