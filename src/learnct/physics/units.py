"""Hounsfield units <-> a preset's image units.

``HU = 1000 (mu - mu_water) / mu_water`` (water 0, air -1000), and a preset's image is the
attenuation in units of its ``mu`` (``PhysicsPreset.mu``, 1/mm): ``image = mu / mu_unit``. For
the fan presets ``mu_unit = mu_water`` (image = ``1 + HU/1000``: water 1, air 0); for
``lodopab`` ``mu_unit = mu_max`` = 0.08135858 /mm.
"""

from __future__ import annotations

import numpy as np

from learnct.physics.noise import MU_WATER

__all__ = ["IMAGE_UNIT_RANGE", "hu_to_image", "image_to_hu", "in_image_units"]

#: The range of plausible values (min, max) in image units (attenuation over the preset's mu:
#: at the fan presets air 0, water 1, cortical bone about 2, steel about 30): HU, grey levels
#: or HU + 1024 lie outside it.
IMAGE_UNIT_RANGE = (-1.0, 50.0)


def hu_to_image(hu: np.ndarray, mu_unit: float, mu_water: float = MU_WATER) -> np.ndarray:
    """Image units of ``hu``: ``max(0, mu_water (1 + HU/1000)) / mu_unit`` (no negative
    attenuation: below -1000 HU is air)."""
    return np.clip(mu_water * (1 + np.asarray(hu) / 1000), 0, None) / mu_unit


def image_to_hu(image: np.ndarray, mu_unit: float, mu_water: float = MU_WATER) -> np.ndarray:
    """Hounsfield units of an image in units of ``mu_unit``: ``1000 (image mu_unit / mu_water
    - 1)``."""
    return 1000 * (np.asarray(image) * mu_unit / mu_water - 1)


def in_image_units(values: np.ndarray) -> bool:
    """Whether every one of ``values`` lies in :data:`IMAGE_UNIT_RANGE`."""
    lo, hi = IMAGE_UNIT_RANGE
    return bool(lo <= float(np.min(values)) and float(np.max(values)) <= hi)
