"""How a net's forward is executed, without touching its parameters' values: mixed precision
for the CNN blocks, ``torch.compile``, and the activations' memory layout.

All three are flags of the learned methods (``model.autocast``, ``model.compile``, and the run's
``trainer.channels_last``); none changes a parameter name or shape, so checkpoints load with
any setting.

- ``autocast="bf16"``: the CNN blocks run under ``torch.autocast(dtype=torch.bfloat16)`` on
  the input's device (CPU or CUDA). Convolutions and PReLU compute and store their activations
  in bfloat16 (8-bit mantissa, float32's range: no loss scaling needed); the residual updates
  ``f + Lambda(...)`` and everything outside the blocks stay float32, and the ray transform
  and FBP always compute in float32 (they switch autocast off; see ``RayTransform``).
- ``compile=True``: ``nn.Module.compile()`` (TorchInductor) on each CNN block, in place, so
  the state dict keeps its keys (``torch.compile(module)`` would prefix ``_orig_mod.``). The
  operator stays outside the compiled graphs. The compiled modules must define ``forward``
  in learnct (Dynamo skips ``nn.Sequential.forward`` as a top frame: ``ConvBlock`` defines
  its own).
- ``channels_last=True``: the CNN blocks' weights and activations in channels-last layout
  (NHWC strides, :data:`torch.channels_last`), the layout cuDNN's tensor-core convolutions and
  oneDNN's CPU convolutions compute in: without it every convolution converts its NCHW input
  and output (cuDNN, issue #21's profile: 3.7 of 24 ms of an LPD step). The tensors keep their
  shapes, so the weights, the state dict and the results are the same up to float rounding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn

__all__ = [
    "AUTOCAST_DTYPES",
    "block_autocast",
    "cat_channels",
    "check_autocast",
    "compile_blocks",
    "compiled_graphs",
    "to_layout",
]

#: ``model.autocast`` values -> dtype (``None``: full float32).
AUTOCAST_DTYPES: dict[str, torch.dtype] = {"bf16": torch.bfloat16}


def check_autocast(autocast: str | None) -> str | None:
    """``autocast`` if valid (``None`` or a key of ``AUTOCAST_DTYPES``), else ``ValueError``."""
    if autocast is not None and autocast not in AUTOCAST_DTYPES:
        raise ValueError(
            f"unknown autocast {autocast!r}: choose null or one of {sorted(AUTOCAST_DTYPES)}"
        )
    return autocast


def block_autocast(autocast: str | None, device: torch.device) -> AbstractContextManager:
    """The context for a CNN block on ``device``: ``torch.autocast`` with the dtype of
    ``autocast``, or a no-op for ``None``."""
    if autocast is None:
        return nullcontext()
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[autocast])


def cat_channels(tensors: Sequence[torch.Tensor], channels_last: bool) -> torch.Tensor:
    """``torch.cat(tensors, dim=1)`` of ``(B, C_k, H, W)`` tensors, in channels-last layout when
    ``channels_last`` (``torch.cat`` itself returns NCHW when one input has a single channel,
    whose layout is ambiguous: the concatenation then runs along the last axis of NHWC views)."""
    if not channels_last:
        return torch.cat(list(tensors), dim=1)
    nhwc = torch.cat([t.permute(0, 2, 3, 1) for t in tensors], dim=-1)
    return nhwc.permute(0, 3, 1, 2)


def to_layout(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """``x`` in channels-last layout when ``channels_last`` (a no-op if it already is), else
    ``x`` as it is."""
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def compile_blocks(blocks: Iterable[nn.Module], **options) -> None:
    """Compile each module's forward in place (``nn.Module.compile``; parameter names kept)."""
    for block in blocks:
        block.compile(**options)


def compiled_graphs() -> int:
    """Graphs Dynamo has compiled in this process (to check that compiling took effect)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])
