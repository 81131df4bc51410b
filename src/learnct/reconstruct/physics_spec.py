"""The acquisition of ``learnct-reconstruct``: a named preset, or a small YAML file.

A geometry file holds a geometry's fields (:func:`~learnct.physics.geometry.geometry_from_record`:
``kind: fan`` or ``parallel``, ``image_size``, ``n_angles``, ``n_detectors``, ``pixel_size``
in mm, optional ``detector_spacing``, ``source_radius``, ``detector_radius`` in mm,
``angle_range``, ``angle_offset`` in radians) and optionally its noise model, the fields of
:class:`~learnct.physics.presets.PhysicsPreset` (``photons``, ``mu`` in 1/mm, ``noise``,
``relative_std``, ``min_counts``)::

    kind: fan
    image_size: 128
    n_angles: 200
    n_detectors: 256
    pixel_size: 2.0
    photons: 1.0e4
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import yaml

from learnct.physics.geometry import Geometry, geometry_differences, geometry_from_record
from learnct.physics.presets import PRESETS, PhysicsPreset

__all__ = ["NOISE_FIELDS", "matching_preset", "read_physics_file", "resolve_physics"]

NOISE_FIELDS = ("noise", "photons", "mu", "relative_std", "min_counts")
#: The fields a geometry file must give (the others have defaults).
REQUIRED_FIELDS = ("kind", "image_size", "n_angles", "n_detectors", "pixel_size")


def _number(value: object) -> object:
    """``value``, or the float a string spells: PyYAML reads ``1.0e4`` (YAML 1.1, no sign in
    the exponent) as a string."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def read_physics_file(path: str | Path) -> PhysicsPreset:
    """The preset a geometry YAML file describes (named after the file); ``ValueError`` naming
    the file and the bad field."""
    path = Path(path)
    try:
        record = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"geometry file {path}: cannot read it ({err})") from err
    if not isinstance(record, dict):
        raise ValueError(f"geometry file {path}: expected a mapping of geometry fields")
    record = {k: _number(v) for k, v in record.items()}
    missing = [key for key in REQUIRED_FIELDS if key not in record]
    if missing:
        raise ValueError(
            f"geometry file {path}: missing {', '.join(missing)} (required: "
            f"{', '.join(REQUIRED_FIELDS)})"
        )
    noise = {k: record.pop(k) for k in NOISE_FIELDS if k in record}
    try:
        return PhysicsPreset(path.stem, geometry_from_record(record), **noise)
    except (TypeError, ValueError) as err:
        raise ValueError(f"geometry file {path}: {err}") from err


def matching_preset(geometry: Geometry) -> PhysicsPreset:
    """The named preset of ``geometry`` (its noise model), or a Poisson preset named
    ``custom`` with the defaults when no preset has that geometry."""
    for make in PRESETS.values():
        preset = make()
        if not geometry_differences(preset.geometry, geometry):
            return preset
    return PhysicsPreset("custom", geometry)


def resolve_physics(
    preset: str | None,
    geometry_file: str | Path | None,
    photons: float | None,
    model_geometry: Geometry | None,
) -> PhysicsPreset:
    """The preset to simulate and reconstruct with: ``geometry_file``, else the named
    ``preset``, else the model's own geometry (its preset), with ``photons`` if given."""
    if preset is not None and geometry_file is not None:
        raise ValueError("give --preset or --geometry-file, not both")
    if geometry_file is not None:
        chosen = read_physics_file(geometry_file)
    elif preset is not None:
        if preset not in PRESETS:
            raise ValueError(f"--preset {preset!r} is not valid: choose one of {sorted(PRESETS)}")
        chosen = PRESETS[preset]()
    elif model_geometry is not None:
        chosen = matching_preset(model_geometry)
    else:
        raise ValueError("FBP and TV need a geometry: give --preset or --geometry-file")
    if photons is not None:
        chosen = dataclasses.replace(chosen, photons=photons)
    return chosen
