"""Low-dose noise: Poisson statistics, Gaussian level, reproducibility, errors."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from learnct.physics import simulate_low_dose
from learnct.physics.presets import PHOTONS_RANGE, PhysicsPreset, fan_lowdose, parallel_ellipses


def test_poisson_counts_have_the_poisson_mean_and_variance():
    photons, mu, y = 1e4, 0.02, 100.0  # mu * y = 2: expected counts 1353.4
    sino = torch.full((4, 1, 250, 250), y)
    gen = torch.Generator().manual_seed(1234)
    noisy = simulate_low_dose(sino, photons, mu=mu, generator=gen)
    counts = photons * torch.exp(-mu * noisy.double())
    expected = photons * math.exp(-mu * y)
    n = counts.numel()
    # sample mean within 4 standard errors, sample variance within 4 of its standard errors
    assert abs(counts.mean().item() - expected) < 4 * math.sqrt(expected / n)
    var_se = expected * math.sqrt(2 / n)  # Poisson(lam) with lam >> 1: var(s^2) ~ 2 lam^2 / n
    assert abs(counts.var().item() - expected) < 4 * var_se
    # the counts are integers
    assert torch.allclose(counts, counts.round(), atol=1e-3 * expected)


def test_zero_counts_are_clamped_to_min_counts():
    sino = torch.full((1, 1, 10, 10), 1e4)  # exp(-200): no photon arrives
    out = simulate_low_dose(sino, 1e4, mu=0.02, min_counts=1.0)
    assert torch.allclose(out, torch.full_like(out, math.log(1e4) / 0.02))
    out = simulate_low_dose(sino, 1e4, mu=0.02, min_counts=0.1)
    assert torch.allclose(out, torch.full_like(out, math.log(1e5) / 0.02))


def test_gaussian_noise_is_relative_to_the_mean_absolute_value_per_sample():
    sino = torch.stack([torch.full((1, 200, 200), 2.0), torch.full((1, 200, 200), -10.0)])
    gen = torch.Generator().manual_seed(0)
    out = simulate_low_dose(sino, noise="gaussian", relative_std=0.05, generator=gen)
    std = (out - sino).flatten(1).std(dim=1)
    assert std[0].item() == pytest.approx(0.1, rel=0.02)
    assert std[1].item() == pytest.approx(0.5, rel=0.02)


def test_per_sample_generators_make_each_sample_independent_of_the_batch():
    sino = torch.rand(3, 1, 20, 30) * 50

    def gens(seeds):
        return [torch.Generator().manual_seed(s) for s in seeds]

    batch = simulate_low_dose(sino, 1e3, mu=0.02, generator=gens([10, 11, 12]))
    alone = simulate_low_dose(sino[1:2], 1e3, mu=0.02, generator=gens([11]))
    assert torch.equal(batch[1:2], alone)
    other = simulate_low_dose(sino, 1e3, mu=0.02, generator=gens([10, 99, 12]))
    assert torch.equal(batch[0], other[0]) and not torch.equal(batch[1], other[1])


def test_low_dose_is_noisier_than_high_dose():
    sino = torch.rand(2, 1, 40, 40) * 100
    err = {}
    for photons in (1e3, 1e5):
        gen = torch.Generator().manual_seed(0)
        err[photons] = (simulate_low_dose(sino, photons, mu=0.02, generator=gen) - sino).std()
    # the std of the post-log data scales like 1/sqrt(I0): a factor 10 here
    assert (err[1e3] / err[1e5]).item() == pytest.approx(10, rel=0.1)


def test_per_sample_doses_in_one_call_are_the_per_sample_draws():
    """A tensor of doses simulates each sample at its own dose in one batched call: on the CPU
    the very draws of simulating the samples one after another with the same generator."""
    sino = torch.rand(3, 1, 20, 30) * 20  # mu * y < 0.4
    doses = [10.0, 1e3, 123456.7]
    gen = torch.Generator().manual_seed(5)
    batched = simulate_low_dose(
        sino, torch.tensor(doses, dtype=torch.float64), mu=0.02, generator=gen
    )
    gen.manual_seed(5)
    alone = [
        simulate_low_dose(sino[k : k + 1], d, mu=0.02, generator=gen) for k, d in enumerate(doses)
    ]
    assert torch.equal(batched, torch.cat(alone)) and batched.dtype == torch.float32
    spread = (batched - sino).std(dim=(1, 2, 3))
    assert spread[0] > 5 * spread[1] > 25 * spread[2]  # std ~ 1/sqrt(photons): x10, x11


@pytest.mark.parametrize(
    ("photons", "message"),
    [
        (
            torch.tensor([1e3, 1e4, 1e5]),
            r"of shape \(\) or \(2,\).*got torch.float32 of shape \(3,\)",
        ),
        (torch.tensor([1000, 1000]), "must be floating point.*got torch.int64"),
        (torch.full((2, 1), 1e3), r"got torch.float32 of shape \(2, 1\)"),
        (torch.full((2,), 1e3, device="meta"), "photons is on meta but the sinogram is on cpu"),
    ],
)
def test_bad_dose_tensors_raise_clear_errors(photons, message):
    with pytest.raises(ValueError, match=message):
        simulate_low_dose(torch.ones(2, 1, 4, 4), photons)


def test_gaussian_preset_refuses_per_sample_doses():
    preset = parallel_ellipses()
    with pytest.raises(ValueError, match="photons only applies to Poisson presets"):
        preset.simulate(torch.ones(2, 1, 4, 4), photons=torch.full((2,), 1e3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"photons": 0}, "photons must be a positive number"),
        ({"photons": -5.0}, "photons must be a positive number"),
        ({"photons": float("inf")}, "photons must be finite"),
        ({"mu": 0.0}, "mu must be a positive attenuation"),
        ({"noise": "speckle"}, "unknown noise model 'speckle'"),
        ({"min_counts": 0}, "min_counts must be a positive number of photons"),
        ({"generator": [torch.Generator()]}, "got 1 generators for a batch of 2"),
        ({"generator": "seed"}, "generator must be a torch.Generator"),
        ({"generator": 0}, "generator must be a torch.Generator or a sequence.*got int"),
        ({"photons": True}, "photons must be a positive number"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        simulate_low_dose(torch.ones(2, 1, 4, 4), **{"photons": 1e4, **kwargs})


def test_non_finite_and_non_float_sinograms_are_rejected():
    with pytest.raises(ValueError, match="NaN or inf"):
        simulate_low_dose(torch.tensor([[float("nan")]]), 1e4)
    nan = torch.tensor([[float("nan")]])
    unchecked = simulate_low_dose(nan, None, noise="gaussian", check_finite=False)
    assert torch.isnan(unchecked).all()  # the caller's choice: no reduction, no host read
    with pytest.raises(ValueError, match="floating-point"):
        simulate_low_dose(torch.ones(2, 3, dtype=torch.int32), 1e4)


def test_presets_take_photons_only_where_the_simulated_counts_hold():
    """At both ends of ``PHOTONS_RANGE`` a preset's measurements are finite, and at the top
    within a few noise standard deviations of the line integrals; just outside, the preset
    refuses the dose."""
    low, high = PHOTONS_RANGE
    mu = fan_lowdose().mu
    sino = torch.linspace(0, 300, 2000).reshape(2, 1, 10, 100)  # mu * y from 0 to 6
    for photons in (low, high):
        preset = dataclasses.replace(fan_lowdose(), photons=photons)
        noisy = preset.simulate(sino, torch.Generator().manual_seed(0))
        assert torch.isfinite(noisy).all(), photons
    # post-log std 1 / (mu sqrt(expected counts)), largest where the counts are fewest
    sigma = 1 / (mu * math.sqrt(high * math.exp(-6)))
    assert (noisy - sino).abs().max() < 6 * sigma
    for photons in (0.99 * low, 1.01 * high):
        with pytest.raises(ValueError, match=r"is not valid: it must be from 1 to 1e\+09 photons"):
            dataclasses.replace(fan_lowdose(), photons=photons)


@pytest.mark.gpu
def test_cuda_poisson_counts_hold_at_the_photon_limit_and_overflow_past_2_to_the_32():
    """The upper photon bound is below where CUDA's ``torch.poisson`` (cuRAND's 32-bit unsigned
    counts) breaks: at 1e9 the counts have the Poisson mean, at 1e10 they cannot exceed 2^32,
    so a blank-scan pixel (line integral 0) reads as more than 40 image units x mm."""
    high = PHOTONS_RANGE[1]
    gen = torch.Generator("cuda").manual_seed(0)
    counts = torch.poisson(torch.full((10000,), high, device="cuda"), generator=gen)
    assert counts.mean().item() == pytest.approx(high, rel=1e-5)
    zeros = torch.zeros(1, 1, 10, 100, device="cuda")
    assert simulate_low_dose(zeros, high, mu=0.02, generator=gen).abs().max() < 0.02
    assert simulate_low_dose(zeros, 10 * high, mu=0.02, generator=gen).min() > 40


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mu": 0}, r"mu must be a positive attenuation \(1/mm, 0.02: water\), got 0"),
        ({"mu": -0.02}, "mu must be a positive attenuation"),
        ({"noise": "Poisson"}, r"unknown noise model 'Poisson': choose one of \('poisson'"),
        ({"min_counts": 0}, "min_counts must be a positive number of photons"),
        ({"noise": "gaussian", "relative_std": -0.1}, "relative_std must be >= 0"),
        ({"noise": "gaussian", "photons": 1e3}, "photons only applies to Poisson presets"),
    ],
)
def test_a_preset_refuses_bad_noise_settings_when_made(kwargs, message):
    """A preset (a config's physics, a geometry file) is checked when made: a zero ``mu`` would
    otherwise give -1000 HU everywhere from ``image_to_hu`` with no error."""
    geometry = fan_lowdose().geometry
    with pytest.raises(ValueError, match=message):
        PhysicsPreset("custom", geometry, **kwargs)


def test_a_gaussian_preset_needs_no_photons_and_a_poisson_one_defaults_to_1e4():
    geometry = fan_lowdose().geometry
    assert PhysicsPreset("g", geometry, noise="gaussian").photons is None
    assert PhysicsPreset("p", geometry).photons == 1e4


def test_the_default_attenuation_is_waters_for_images_relative_to_water():
    """Line integrals of a water-relative image (water 1) over 0-256 mm: at water's 0.02 /mm
    the thickest ray keeps about 1e4 exp(-5.12) = 60 photons, so the noisy data scatter about
    the clean ones (std about 1 / (mu sqrt(N)) = 6.5 there); at 1 /mm every ray would be
    clamped to one count (-log(1/1e4) = 9.2 everywhere)."""
    sino = torch.linspace(0, 256, 2001).reshape(1, 1, 1, -1)
    noisy = simulate_low_dose(sino, 1e4, generator=torch.Generator().manual_seed(0))
    assert (noisy - sino).mean().abs() < 0.5
    assert (noisy - sino)[..., -200:].std() == pytest.approx(6.5, rel=0.2)
