"""The names a config may choose from, in a module that imports nothing heavy.

``validate_config`` checks a run's config against these before torch and Lightning load, so a
typo fails in about half a second. Each tuple mirrors a registry that lives beside the code it
names (``PRESETS``, ``BACKENDS``, ``LOSSES``); ``tests/reliability/test_config_names.py`` keeps
each pair equal.
"""

from __future__ import annotations

__all__ = ["BACKEND_NAMES", "FILTERS", "LOSS_NAMES", "PRESET_NAMES", "SOURCES"]

#: Physics presets (``learnct.physics.presets.PRESETS``).
PRESET_NAMES = ("fan_lowdose", "fan_mayo", "parallel_ellipses", "lodopab")
#: Projector backends (``learnct.physics.backends.BACKENDS``); ``auto`` picks one per device.
BACKEND_NAMES = ("sparse", "matrix_free", "triton", "astra", "torch_radon")
#: FBP ramp filter windows (``learnct.physics.fbp``).
FILTERS = ("ram-lak", "shepp-logan", "cosine", "hann")
#: Phantom and image sources of the data module (``learnct.data.sources.BUILDERS``).
SOURCES = ("ellipses", "shepp_logan", "lodopab", "folder")
#: Training losses (``learnct.methods.base.LOSSES``).
LOSS_NAMES = ("mse", "l1", "smooth_l1")
