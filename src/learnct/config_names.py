"""The names a config may choose from, in a module that imports nothing heavy.

``validate_config`` checks a run's config against these before torch and Lightning load, so a
typo fails in about half a second. Each tuple mirrors a registry that lives beside the code it
names (``PRESETS``, ``BACKENDS``, ``LOSSES``); ``tests/run/test_config_names.py`` keeps
each pair equal.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "BACKEND_NAMES",
    "FILTERS",
    "FOLDER_FITS",
    "LOSS_NAMES",
    "PRECISIONS",
    "PRESET_NAMES",
    "SOURCES",
    "TRAIN_METRICS",
    "VAL_METRICS",
    "source_names",
]

#: Physics presets (``learnct.physics.presets.PRESETS``).
PRESET_NAMES = ("fan_lowdose", "fan_mayo", "parallel_ellipses", "lodopab")
#: Projector backends (``learnct.physics.backends.BACKENDS``); ``auto`` picks one per device.
BACKEND_NAMES = ("sparse", "matrix_free", "triton", "astra", "torch_radon")
#: FBP ramp filter windows (``learnct.physics.fbp``).
FILTERS = ("ram-lak", "shepp-logan", "cosine", "hann")
#: Phantom and image sources of the data module (``learnct.data.sources.BUILDERS``).
SOURCES = ("ellipses", "shepp_logan", "lodopab", "folder", "ctlike")
#: How a ``folder`` source places a slice in the field (``learnct.data.sources.folder.FITS``).
FOLDER_FITS = ("spacing", "field")
#: Training losses (``learnct.methods.base.LOSSES``).
LOSS_NAMES = ("mse", "l1", "smooth_l1")
#: Lightning's precision settings (``lightning.fabric.connector._PRECISION_INPUT``): the
#: canonical names, the integers and the legacy aliases.
PRECISIONS = (
    "transformer-engine",
    "transformer-engine-float16",
    "16-true",
    "16-mixed",
    "bf16-true",
    "bf16-mixed",
    "32-true",
    "64-true",
    64,
    32,
    16,
    "64",
    "32",
    "16",
    "bf16",
)
#: What a trainable method has logged by its first validation (``learnct.methods.base``):
#: the metrics a checkpoint callback may monitor and ``optimized_metric`` may name. Lightning
#: adds ``_step`` to a metric logged per step and per epoch.
TRAIN_METRICS = ("train/loss", "train/loss_step")
#: The validation metrics (``val/psnr_best`` is the best ``val/psnr`` so far). With several
#: validation sources Lightning appends ``/dataloader_idx_<k>`` to each but ``val/psnr_best``
#: (that of the first source).
VAL_METRICS = ("val/loss", "val/psnr", "val/ssim", "val/psnr_best")


def source_names(value: str | Sequence[str], setting: str) -> tuple[str, ...]:
    """The sources a data setting names (``data.source``: one name; ``data.val_source``,
    ``data.test_source``: one name or a list), checked once for the config and the data
    module alike: at least one, each of :data:`SOURCES`, none twice; else a ``ValueError``
    ``<setting>=<value> is not valid: ...``."""
    if isinstance(value, str):
        names: tuple[str, ...] = (value,)
    elif isinstance(value, Sequence):  # also OmegaConf's ListConfig
        names = tuple(value)
    else:
        names = ()
    shown = value if isinstance(value, str) else list(names) if names else value
    problem = f"{setting}={shown!r} is not valid"
    if not isinstance(value, str) and not names:
        raise ValueError(f"{problem}: name a source or a list of them from {SOURCES}")
    for name in names:
        if name not in SOURCES:
            raise ValueError(f"{problem}: {name!r} is not a data source; choose from {SOURCES}")
    if len(set(names)) != len(names):
        raise ValueError(f"{problem}: it names a source twice")
    return names
