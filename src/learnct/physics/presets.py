"""Named acquisition setups: a geometry plus its noise model (``PhysicsPreset``), and
``make_physics``, the ``physics`` config group's target: a preset with overrides and its
operator.

- ``fan_lowdose`` (learnct's default): 128 x 128 pixels of 2 mm (a 256 mm field of view, as in
  the human-data setup below, so line integrals and photon statistics are comparable), fan beam
  with source and detector 500 mm from the centre, 200 angles over 2 pi, 256 detector pixels
  of 3.03 mm that cover the image's circumscribed circle, Poisson noise with 10^4 photons per
  detector pixel and mu_water = 0.02 /mm (images in water-relative density). Noiseless FBP of
  the modified Shepp-Logan phantom reaches 31.5 dB (Ram-Lak) / 30.4 dB (Shepp-Logan filter);
  small enough that learned iterative methods train on a laptop CPU.
- ``fan_mayo``: Adler and Öktem's human-data geometry: 512 x 512 on [-128, 128]^2 mm, 1000
  angles over [0, 2 pi), flat detector of 1000 pixels over [-360, 360] mm, source and
  detector 500 mm from the centre, Poisson 10^4 photons, mu_water 0.02 /mm, counts >= 1.
- ``parallel_ellipses``: the LPD paper's ellipse setup: 128 x 128 on [-64, 64]^2, 30 parallel
  angles over [0, pi) (cell midpoints, as ODL's uniform partition), 183 detector pixels over
  the circumscribed circle, additive Gaussian noise of 5 % of the mean absolute sinogram.
- ``lodopab``: LoDoPaB-CT: 362 x 362 over 260 mm, parallel beam, 1000 angles over [0, pi)
  (cell midpoints), 513 detector pixels over the circumscribed circle, Poisson 4096 photons,
  images normalised by mu_max = 81.35858 /m (so mu = 0.08135858 /mm), zero counts -> 0.1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch

from learnct.physics.geometry import FanBeamGeometry, Geometry, ParallelBeamGeometry
from learnct.physics.noise import MU_WATER, check_noise_settings, simulate_low_dose
from learnct.physics.operator import RayTransform

__all__ = [
    "PHOTONS_RANGE",
    "PRESETS",
    "Physics",
    "PhysicsPreset",
    "check_photons",
    "configure_preset",
    "fan_lowdose",
    "fan_mayo",
    "lodopab",
    "make_physics",
    "parallel_ellipses",
    "preset_differences",
    "section_preset",
]

MU_MAX_LODOPAB = 81.35858e-3  # 1/mm
#: The photons per detector pixel a Poisson preset may have, inclusive (see ``PhysicsPreset``).
PHOTONS_RANGE = (1.0, 1e9)


def check_photons(photons: object) -> float:
    """``photons`` (per detector pixel in the blank scan) as a float, if it lies in
    :data:`PHOTONS_RANGE` (why: :meth:`PhysicsPreset.__post_init__`); else ``ValueError``."""
    low, high = PHOTONS_RANGE
    if isinstance(photons, bool) or not isinstance(photons, (int, float)) or photons <= 0:
        raise ValueError(
            f"photons={photons!r} is not valid: it must be a positive finite number (photons "
            f"per detector pixel, from {low:g} to {high:g})"
        )
    if not low <= photons <= high:
        raise ValueError(
            f"photons={photons!r} is not valid: it must be from {low:g} to {high:g} photons "
            "per detector pixel (fewer: the counts are mostly zero; more: torch.poisson's "
            "counts overflow on CUDA)"
        )
    return float(photons)


@dataclass(frozen=True)
class PhysicsPreset:
    """A geometry and the noise model of its measurements (see ``simulate_low_dose``)."""

    name: str
    geometry: Geometry
    noise: str = "poisson"
    photons: float | None = None  # Poisson: 1e4 when not given
    mu: float = MU_WATER
    relative_std: float = 0.05
    min_counts: float = 1.0

    def __post_init__(self) -> None:
        """The noise settings are checked here, once, however a preset is made (a config's
        ``physics``, a geometry file, a DataModule's ``photons`` override, a dose curve's
        doses): ``noise``, ``mu``, ``relative_std`` and ``min_counts`` by
        ``check_noise_settings``; ``photons`` only for Poisson noise (default 1e4).

        ``photons`` must lie in :data:`PHOTONS_RANGE`, ``[1, 1e9]``, where ``simulate_low_dose``
        draws the counts it means. Below one photon per pixel in the blank scan most counts are
        zero and become ``min_counts``, so the measurements hold almost no information (and
        below ~1e-38, ``min_counts / photons`` overflows float32: they are inf). Above, the
        counts outgrow ``torch.poisson``: on CUDA it returns cuRAND's 32-bit unsigned counts, so
        expected counts past 2^32 ~ 4.3e9 come back wrong, with no error (on the CPU the limit
        is 2^63 ~ 9.2e18, where they turn negative; past float32's ~3.4e38 they are inf and the
        results NaN). 1e9 keeps every expected count and its noise well below 2^32, and is far
        above any CT dose (clinical scans: ~1e5 to 1e6)."""
        settings = {"relative_std": self.relative_std, "min_counts": self.min_counts}
        check_noise_settings(self.noise, mu=self.mu, **settings)
        object.__setattr__(self, "mu", float(self.mu))  # checked just above
        photons = self.photons
        if self.noise != "poisson":
            if photons is not None:
                raise ValueError(
                    f"photons only applies to Poisson presets; {self.name!r} uses {self.noise} "
                    "noise (leave photons out, or use noise: poisson)"
                )
            return
        object.__setattr__(self, "photons", check_photons(1e4 if photons is None else photons))

    def simulate(
        self,
        sinogram: torch.Tensor,
        generator: torch.Generator | Sequence[torch.Generator] | None = None,
        *,
        photons: torch.Tensor | None = None,
        check_finite: bool = True,
    ) -> torch.Tensor:
        """Noisy measurements of clean line integrals with this preset's noise model.

        ``photons``: per-sample doses ``(B,)`` (photons per detector pixel) replacing the
        preset's, each checked by their maker; ``check_finite``: see ``simulate_low_dose``."""
        if photons is not None and self.noise != "poisson":
            raise ValueError(
                f"photons only applies to Poisson presets; {self.name!r} uses {self.noise} noise"
            )
        return simulate_low_dose(
            sinogram,
            self.photons if photons is None else photons,
            mu=self.mu,
            noise=self.noise,
            relative_std=self.relative_std,
            min_counts=self.min_counts,
            generator=generator,
            check_finite=check_finite,
        )


def fan_lowdose(photons: float = 1e4) -> PhysicsPreset:
    geometry = FanBeamGeometry(image_size=128, n_angles=200, n_detectors=256, pixel_size=2.0)
    return PhysicsPreset("fan_lowdose", geometry, photons=photons)


def fan_mayo(photons: float = 1e4) -> PhysicsPreset:
    geometry = FanBeamGeometry(
        image_size=512,
        n_angles=1000,
        n_detectors=1000,
        pixel_size=0.5,
        source_radius=500.0,
        detector_radius=500.0,
        detector_spacing=0.72,
    )
    return PhysicsPreset("fan_mayo", geometry, photons=photons)


def parallel_ellipses(relative_std: float = 0.05) -> PhysicsPreset:
    geometry = ParallelBeamGeometry(
        image_size=128, n_angles=30, n_detectors=183, pixel_size=1.0, angle_offset=math.pi / 60
    )
    return PhysicsPreset(
        "parallel_ellipses", geometry, noise="gaussian", photons=None, relative_std=relative_std
    )


def lodopab(photons: float = 4096) -> PhysicsPreset:
    geometry = ParallelBeamGeometry(
        image_size=362,
        n_angles=1000,
        n_detectors=513,
        pixel_size=260 / 362,
        angle_offset=math.pi / 2000,
    )
    return PhysicsPreset("lodopab", geometry, photons=photons, mu=MU_MAX_LODOPAB, min_counts=0.1)


PRESETS: dict[str, Callable[..., PhysicsPreset]] = {
    "fan_lowdose": fan_lowdose,
    "fan_mayo": fan_mayo,
    "parallel_ellipses": parallel_ellipses,
    "lodopab": lodopab,
}


class Physics(NamedTuple):
    """A run's physics: the preset (geometry and noise model) and its operator, built once and
    shared by the simulation and the reconstruction (``preset, operator = physics``)."""

    preset: PhysicsPreset
    operator: RayTransform


def configure_preset(
    preset: str,
    photons: float | None = None,
    image_size: int | None = None,
    n_angles: int | None = None,
    n_detectors: int | None = None,
) -> PhysicsPreset:
    """The preset named ``preset`` with ``photons`` per detector pixel and the given geometry
    fields (``None``: the preset's). The other fields keep the preset's values (pixel size and
    detector spacing in mm: a new ``image_size`` changes the field of view, a new
    ``n_detectors`` the detector's width), except that angles at cell midpoints (an offset of
    half an angle step: ``parallel_ellipses``, ``lodopab``) stay at midpoints for a new
    ``n_angles``. Raises ``ValueError`` naming the argument: the geometry checks its own fields
    (e.g. a fan that misses the image)."""
    if preset not in PRESETS:
        raise ValueError(f"preset={preset!r} is not valid: choose one of {sorted(PRESETS)}")
    chosen = PRESETS[preset]()
    if photons is not None:
        chosen = dataclasses.replace(chosen, photons=photons)
    overrides = {"image_size": image_size, "n_angles": n_angles, "n_detectors": n_detectors}
    changes = {k: v for k, v in overrides.items() if v is not None}
    if not changes:
        return chosen
    geometry = chosen.geometry
    fields = {f.name: getattr(geometry, f.name) for f in dataclasses.fields(geometry) if f.init}
    midpoints = math.isclose(geometry.angle_offset, geometry.angle_step / 2, rel_tol=1e-9)
    try:
        geometry = type(geometry)(**{**fields, **changes})
        if "n_angles" in changes and midpoints:  # the new angle step's midpoints
            geometry = dataclasses.replace(geometry, angle_offset=geometry.angle_step / 2)
    except ValueError as err:
        keys = ", ".join(f"{k}={v}" for k, v in changes.items())
        raise ValueError(f"{keys} on the {preset} geometry: {err}") from err
    return dataclasses.replace(chosen, geometry=geometry)


def section_preset(section: Mapping[str, object]) -> PhysicsPreset:
    """The preset of a config's ``physics`` section (``preset`` and its overrides ``photons``,
    ``image_size``, ``n_angles``, ``n_detectors``: :func:`configure_preset`; other keys, such
    as ``backend``, do not change the measurements). ``ValueError`` where it names no preset
    or cannot be rebuilt."""
    if not isinstance(section.get("preset"), str):
        raise ValueError(f"the physics section names no preset: {dict(section)}")
    keys = ("photons", "image_size", "n_angles", "n_detectors")
    try:
        return configure_preset(section["preset"], **{k: section.get(k) for k in keys})
    except TypeError as err:  # e.g. a string where a number belongs
        raise ValueError(str(err)) from err


def _settings(preset: PhysicsPreset) -> dict[str, object]:
    """What sets a preset's measurements: its noise-model fields (every field but its name and
    geometry) and its geometry's fields."""
    return {
        f.name: getattr(owner, f.name)
        for owner in (preset, preset.geometry)
        for f in dataclasses.fields(owner)
        if f.init and f.name not in ("name", "geometry")
    }


def preset_differences(
    preset: PhysicsPreset, reference: PhysicsPreset
) -> list[tuple[str, object, object]]:
    """Where ``preset`` measures differently from ``reference``: ``(setting, preset's value,
    reference's value)`` for every noise-model and geometry field that differs (a preset's
    name alone is not a difference), a different geometry kind first as ``("geometry",
    preset's class name, reference's)``. ``[]``: the same measurements."""
    ours, theirs = _settings(preset), _settings(reference)
    changed = [(k, ours.get(k), v) for k, v in theirs.items() if ours.get(k) != v]
    if type(preset.geometry) is not type(reference.geometry):
        kinds = (type(preset.geometry).__name__, type(reference.geometry).__name__)
        changed.insert(0, ("geometry", *kinds))
    return changed


def make_physics(
    preset: str,
    backend: str = "auto",
    photons: float | None = None,
    image_size: int | None = None,
    n_angles: int | None = None,
    n_detectors: int | None = None,
) -> Physics:
    """The preset ``preset`` with overrides (:func:`configure_preset`) and its
    ``RayTransform`` on ``backend``: the target of the ``physics`` config group. Raises
    ``ValueError`` naming the argument."""
    chosen = configure_preset(preset, photons, image_size, n_angles, n_detectors)
    try:
        operator = RayTransform(chosen.geometry, backend=backend)
    except ValueError as err:
        raise ValueError(f"backend: {err}") from err
    return Physics(chosen, operator)
