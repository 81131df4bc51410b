"""``AtomicCheckpointIO``: checkpoints written to a temporary file and renamed into place.

Lightning's ``TorchCheckpointIO`` opens the target for writing and streams the bytes into it,
so a job killed while saving leaves a truncated ``last.ckpt``. Here the checkpoint is written
to a hidden temporary file in the same folder, flushed to disk, and ``os.replace``-d over the
target (:mod:`learnct.run.atomic_files`): a reader sees either the previous complete file or
the new complete file, never a partial one. A killed save can leave a hidden
``.<name>.*.tmp`` file, which :func:`remove_stale_temporaries` deletes. Remote paths
(``s3://`` ...) go through Lightning.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from learnct.run.atomic_files import TEMP_SUFFIX, atomic_open

__all__ = ["TEMP_SUFFIX", "AtomicCheckpointIO", "atomic_torch_save", "remove_stale_temporaries"]


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` through a temporary file and ``os.replace``
    (:func:`learnct.run.atomic_files.atomic_open`)."""
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files a killed save left in ``folder``; returns them."""
    stale = sorted(Path(folder).glob(f".*.ckpt.*{TEMP_SUFFIX}"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (see the module docstring).

    Use it as a Trainer plugin: ``Trainer(plugins=[AtomicCheckpointIO()])`` (learnct's trainer
    configs do).
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None
    ) -> None:
        protocol = get_filesystem(path).protocol
        protocols = {protocol} if isinstance(protocol, str) else set(protocol)
        if storage_options is not None or "file" not in protocols:
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        atomic_torch_save(checkpoint, path)
