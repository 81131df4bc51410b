"""``CTBatch``: what the methods receive in ``training_step`` / ``validation_step`` / ...

``CTDataModule.on_after_batch_transfer`` turns the DataLoader's clean images into a
``CTBatch`` on the training device:

========================  ======================  ============================================
field                     shape, dtype            meaning
========================  ======================  ============================================
``image``                 (B, 1, N, N) float32    ground truth, in the source's image units
``sinogram``              (B, 1, A, D) float32    noisy post-log measurements (image units x mm)
``clean_sinogram``        (B, 1, A, D) float32    noiseless ``RayTransform(image)``
``index``                 (B,) int64              sample index within its split (training:
                                                  the stream index ``epoch * train_size + i``)
========================  ======================  ============================================

``A`` and ``D`` are the geometry's ``n_angles`` and ``n_detectors``; every tensor lives on the
same device. Methods reconstruct from ``sinogram`` and compare with ``image``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = ["CTBatch"]


@dataclass
class CTBatch:
    """A batch of ground-truth images and their simulated measurements (see module doc)."""

    image: torch.Tensor
    sinogram: torch.Tensor
    clean_sinogram: torch.Tensor
    index: torch.Tensor

    def __post_init__(self) -> None:
        b = self.image.shape[0] if self.image.dim() == 4 else None
        for f in fields(self):
            t = getattr(self, f.name)
            if not isinstance(t, torch.Tensor):
                raise ValueError(f"CTBatch.{f.name} must be a torch.Tensor, got {type(t).__name__}")
            if t.device != self.image.device:
                raise ValueError(
                    f"CTBatch.{f.name} is on {t.device} but image is on {self.image.device}"
                )
        if b is None or self.image.shape[1] != 1:
            raise ValueError(f"CTBatch.image must be (B, 1, N, N), got {tuple(self.image.shape)}")
        for name in ("sinogram", "clean_sinogram"):
            t = getattr(self, name)
            if t.dim() != 4 or t.shape[:2] != (b, 1):
                raise ValueError(f"CTBatch.{name} must be ({b}, 1, A, D), got {tuple(t.shape)}")
        if self.index.shape != (b,):
            raise ValueError(f"CTBatch.index must be ({b},), got {tuple(self.index.shape)}")

    @property
    def batch_size(self) -> int:
        return int(self.image.shape[0])

    @property
    def device(self) -> torch.device:
        return self.image.device

    def __len__(self) -> int:
        return self.batch_size

    def to(self, device: torch.device | str, non_blocking: bool = False) -> CTBatch:
        """A copy with every tensor on ``device``."""
        return CTBatch(
            **{
                f.name: getattr(self, f.name).to(device, non_blocking=non_blocking)
                for f in fields(self)
            }
        )
