"""Geometry validation, conventions and derived quantities."""

from __future__ import annotations

import math

import pytest
import torch

from learnct.physics import (
    FanBeamGeometry,
    ParallelBeamGeometry,
    fan_lowdose,
    fan_mayo,
    lodopab,
    parallel_ellipses,
)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image_size": 0}, "image_size must be an integer >= 1"),
        ({"image_size": 64.5}, "image_size must be an integer >= 1"),
        ({"n_angles": 0}, "n_angles must be an integer >= 1"),
        ({"n_detectors": -3}, "n_detectors must be an integer >= 1"),
        ({"pixel_size": 0.0}, "pixel_size"),
        ({"pixel_size": float("nan")}, "pixel_size"),
        ({"source_radius": -1.0}, "source_radius"),
        ({"pixel_size": 1e-9}, r"pixel_size = 1e-09 mm is outside \[1e-06, 1e\+06\] mm"),
        ({"angle_range": 7.0}, "angle_range must be at most 2\\*pi"),
        ({"angle_offset": "pi/60"}, r"angle_offset \(rad\) must be a finite number, got 'pi/60'"),
        ({"angle_offset": float("inf")}, r"angle_offset \(rad\) must be a finite number"),
    ],
)
def test_fan_rejects_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FanBeamGeometry(**kwargs)


def test_fan_that_misses_the_image_says_what_would_cover_it():
    with pytest.raises(ValueError, match="covers a circle of radius") as err:
        FanBeamGeometry(image_size=128, n_detectors=100, detector_spacing=2.0)
    # the suggested number of detectors does cover it
    need = int(str(err.value).split("use at least ")[1].split(" detectors")[0])
    FanBeamGeometry(image_size=128, n_detectors=need, detector_spacing=2.0)
    with pytest.raises(ValueError):
        FanBeamGeometry(image_size=128, n_detectors=need - 1, detector_spacing=2.0)


def test_source_inside_the_image_is_rejected():
    with pytest.raises(ValueError, match="source_radius = 150 mm lies inside the image"):
        FanBeamGeometry(image_size=128, pixel_size=2.0, source_radius=150.0)


def test_parallel_detector_must_cover_the_image():
    with pytest.raises(ValueError, match="use at least 128 detectors"):
        ParallelBeamGeometry(image_size=128, n_detectors=100, detector_spacing=1.0)


def test_fan_rays_start_at_the_source_and_hit_the_detector():
    g = FanBeamGeometry(image_size=64, n_angles=8, n_detectors=96)
    origins, directions = g.rays(torch.arange(8))
    assert torch.allclose(directions.norm(dim=-1), torch.ones(8, 96, dtype=torch.float64))
    assert torch.allclose(origins.norm(dim=-1), torch.full((8, 96), 500.0, dtype=torch.float64))
    # angle 0: source below (0, -500); the central detector pixel lies straight above
    assert torch.allclose(origins[0, 0], torch.tensor([0.0, -500.0], dtype=torch.float64))
    # the ray to the last detector pixel (t > 0) leans towards +x
    assert directions[0, -1, 0] > 0 and directions[0, 0, 0] < 0


def test_default_detector_covers_the_circumscribed_circle():
    g = FanBeamGeometry(image_size=128, n_detectors=256)
    gamma = math.atan(g.detector_width / 2 / g.source_to_detector)
    assert g.source_radius * math.sin(gamma) == pytest.approx(g.circumscribed_radius)
    p = ParallelBeamGeometry(image_size=128, n_detectors=183)
    assert p.detector_width / 2 == pytest.approx(p.circumscribed_radius)


@pytest.mark.parametrize(
    ("geometry", "order"),
    [
        (FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48), (4, 1)),
        (FanBeamGeometry(image_size=32, n_angles=42, n_detectors=48), (2, 2)),
        (FanBeamGeometry(image_size=32, n_angles=37, n_detectors=48), (1, 0)),
        (ParallelBeamGeometry(image_size=32, n_angles=30, n_detectors=47), (2, 1)),
        (ParallelBeamGeometry(image_size=32, n_angles=31, n_detectors=47), (1, 0)),
        (ParallelBeamGeometry(image_size=32, n_angles=30, n_detectors=47, angle_range=3.0), (1, 0)),
    ],
)
def test_rotational_symmetry(geometry, order):
    assert geometry.rotational_symmetry() == order


def test_cache_key_depends_on_every_field():
    a = FanBeamGeometry(image_size=64, n_angles=60, n_detectors=96)
    assert a.cache_key() == FanBeamGeometry(image_size=64, n_angles=60, n_detectors=96).cache_key()
    assert a.cache_key() != FanBeamGeometry(image_size=64, n_angles=60, n_detectors=97).cache_key()
    assert (
        a.cache_key()
        != FanBeamGeometry(
            image_size=64, n_angles=60, n_detectors=96, source_radius=600.0
        ).cache_key()
    )


def test_a_whole_number_and_its_float_make_one_geometry_and_one_cache_key():
    """A YAML ``pixel_size: 2`` and the preset's ``2.0`` share cached operators and plans."""
    for kind in (FanBeamGeometry, ParallelBeamGeometry):
        ints = kind(image_size=64, n_angles=60, n_detectors=96, pixel_size=2, angle_offset=0)
        floats = kind(image_size=64, n_angles=60, n_detectors=96, pixel_size=2.0)
        assert ints == floats and ints.cache_key() == floats.cache_key()
        assert type(ints.pixel_size) is float and type(ints.angle_offset) is float


def test_presets_match_the_published_setups():
    mayo = fan_mayo().geometry
    assert (mayo.image_size, mayo.n_angles, mayo.n_detectors) == (512, 1000, 1000)
    assert mayo.image_width == pytest.approx(256.0)
    assert mayo.detector_width == pytest.approx(720.0)
    assert (mayo.source_radius, mayo.detector_radius) == (500.0, 500.0)
    assert fan_mayo().photons == 1e4 and fan_mayo().mu == pytest.approx(0.02)
    lodo = lodopab()
    assert (lodo.geometry.image_size, lodo.geometry.n_angles, lodo.geometry.n_detectors) == (
        362,
        1000,
        513,
    )
    assert lodo.geometry.image_width == pytest.approx(260.0)
    assert lodo.photons == 4096 and lodo.mu == pytest.approx(0.08135858)
    ell = parallel_ellipses()
    assert (ell.geometry.n_angles, ell.noise, ell.relative_std) == (30, "gaussian", 0.05)
    assert fan_lowdose().geometry.image_size == 128


def test_a_new_number_of_angles_keeps_midpoint_angles_at_midpoints():
    """``parallel_ellipses`` and ``lodopab`` put their angles at cell midpoints (offset half a
    step, as ODL's uniform partition); with ``physics.n_angles`` they stay there, while a
    preset starting at 0 keeps 0; pixel and detector spacing stay the preset's."""
    from learnct.physics.presets import make_physics

    sparse = make_physics("parallel_ellipses", backend="matrix_free", n_angles=60).preset.geometry
    assert sparse.angle_offset == pytest.approx(math.pi / 120) and sparse.n_angles == 60
    assert sparse.angle_offset == pytest.approx(sparse.angle_step / 2)
    assert sparse.detector_spacing == parallel_ellipses().geometry.detector_spacing
    fan = make_physics("fan_lowdose", backend="matrix_free", n_angles=60).preset.geometry
    assert fan.angle_offset == fan_lowdose().geometry.angle_offset == 0.0
    with pytest.raises(ValueError, match="n_angles=0 on the parallel_ellipses geometry"):
        make_physics("parallel_ellipses", n_angles=0)


def test_preset_differences_compare_what_is_measured_not_how_it_is_written():
    """A config section's physics rebuilt (``section_preset``) and compared field by field:
    the preset's own dose written out, or another backend, measure the same; another dose or
    angle count, or another geometry kind, is named with both values."""
    from learnct.physics.presets import preset_differences, section_preset

    plain = section_preset({"preset": "fan_lowdose", "backend": "auto", "photons": None})
    written = section_preset({"preset": "fan_lowdose", "backend": "sparse", "photons": 1e4})
    assert preset_differences(written, plain) == []
    low = section_preset({"preset": "fan_lowdose", "photons": 1e3, "n_angles": 60})
    assert preset_differences(low, plain) == [("photons", 1e3, 1e4), ("n_angles", 60, 200)]
    other = preset_differences(parallel_ellipses(), plain)
    assert other[0] == ("geometry", "ParallelBeamGeometry", "FanBeamGeometry") and len(other) > 4
    with pytest.raises(ValueError, match="names no preset"):
        section_preset({"photons": 1e3})
    with pytest.raises(ValueError, match="n_angles"):
        section_preset({"preset": "fan_lowdose", "n_angles": "sixty"})
