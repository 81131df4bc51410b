"""``TestSetHash``: a fingerprint of the exact test data a method was evaluated on.

For every test dataloader it hashes each sample's ground-truth image and noisy sinogram (the
float32 bytes the method saw, keyed by the sample index, so the batch size and order do not
matter) into one SHA-256, of which the first 16 hex digits go into every results row
(``test_hash``) and the loggers' hyperparameters (``test_hash/<test set>``). Equal hashes mean
bit-identical test measurements; CPU and GPU runs can differ in the last bit of the line
integrals, and then in the hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import lightning as L
import torch

__all__ = ["TestSetHash", "batches_hash", "sample_digest"]


def sample_digest(image: torch.Tensor, sinogram: torch.Tensor) -> bytes:
    """SHA-256 of one sample's image and sinogram as contiguous float32 bytes."""
    h = hashlib.sha256()
    for t in (image, sinogram):
        a = t.detach().to("cpu", torch.float32).contiguous()
        h.update(str(tuple(a.shape)).encode())
        h.update(a.numpy().tobytes())
    return h.digest()


def _add_digests(digests: dict[int, bytes], batch: Any) -> None:
    """Each sample of a ``CTBatch`` into ``digests``, keyed by its index."""
    for i, index in enumerate(batch.index.tolist()):
        digests[int(index)] = sample_digest(batch.image[i], batch.sinogram[i])


def _combined(digests: dict[int, bytes]) -> str:
    """The hash of a test set's sample digests, in index order: 16 hex digits."""
    h = hashlib.sha256()
    for index in sorted(digests):
        h.update(index.to_bytes(8, "little", signed=True) + digests[index])
    return h.hexdigest()[:16]


def batches_hash(batches: Iterable[Any]) -> str:
    """The ``test_hash`` of simulated ``CTBatch`` es (e.g. one test set of
    :func:`learnct.evaluation.simulate_test_sets`), as :class:`TestSetHash` hashes the test
    loader that gives them."""
    digests: dict[int, bytes] = {}
    for batch in batches:
        _add_digests(digests, batch)
    return _combined(digests)


class TestSetHash(L.Callback):
    """See the module docstring; ``hashes[k]`` is dataloader ``k``'s hash after ``test``."""

    __test__ = False  # not a pytest class

    def __init__(self, names: list[str] | None = None) -> None:
        self.names = names
        self.hashes: dict[int, str] = {}
        self._digests: dict[int, dict[int, bytes]] = {}

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._digests = {}
        self.hashes = {}

    def on_test_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        _add_digests(self._digests.setdefault(dataloader_idx, {}), batch)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for k, digests in sorted(self._digests.items()):
            self.hashes[k] = _combined(digests)
        names = self.names or [str(k) for k in self.hashes]
        params = {f"test_hash/{names[k]}": v for k, v in self.hashes.items() if k < len(names)}
        for logger in trainer.loggers:
            logger.log_hyperparams(params)
