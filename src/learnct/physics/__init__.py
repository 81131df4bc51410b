"""CT physics: geometries, the ray transform and its backends, FBP and low-dose noise."""

from learnct.physics.fbp import FILTERS, fbp
from learnct.physics.geometry import FanBeamGeometry, Geometry, ParallelBeamGeometry
from learnct.physics.noise import simulate_low_dose
from learnct.physics.operator import RayTransform, available_backends
from learnct.physics.presets import (
    PRESETS,
    Physics,
    PhysicsPreset,
    fan_lowdose,
    fan_mayo,
    lodopab,
    make_physics,
    parallel_ellipses,
)

__all__ = [
    "FILTERS",
    "PRESETS",
    "FanBeamGeometry",
    "Geometry",
    "ParallelBeamGeometry",
    "Physics",
    "PhysicsPreset",
    "RayTransform",
    "available_backends",
    "fan_lowdose",
    "fan_mayo",
    "fbp",
    "lodopab",
    "make_physics",
    "parallel_ellipses",
    "simulate_low_dose",
]
