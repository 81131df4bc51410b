"""A U-Net for learned post-processing (FBPConvNet, Jin et al. 2017, IEEE TIP).

Encoder: ``depth`` levels of ``[conv3x3 -> norm -> ReLU] x 2`` then 2x2 max-pooling, the
channels doubling from ``width`` each level; a bottleneck; a decoder of bilinear upsampling
(or transposed convolutions), concatenation with the encoder's features and two more
convolutions; a 1x1 convolution to the output. With ``residual=True`` the input is added to
the output (Jin et al.'s residual learning: the net predicts the artefacts of FBP).

Inputs of any size work: they are padded (reflect) to a multiple of ``2**depth`` and the
output is cropped back.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from learnct.checks import check_int

__all__ = ["UNet"]

NORMS = ("batch", "group", "instance", "none")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    return nn.Identity()


class _DoubleConv(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        bias = norm == "none"
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=bias),
            _norm(norm, c_out),
            nn.ReLU(inplace=True),
        )


class UNet(nn.Module):
    """U-Net (see module docstring).

    Args:
        in_channels, out_channels: image channels (1 and 1).
        depth: number of down-sampling steps (4 in Jin et al.).
        width: channels at the first level (64 in Jin et al.; 32 by default here, a quarter
            of the parameters).
        norm: ``"batch"`` (Jin et al.), ``"group"``, ``"instance"`` or ``"none"``.
        residual: add the input to the output (needs ``in_channels == out_channels``).
        upsample: ``"bilinear"`` or ``"transpose"`` (transposed convolutions).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int = 1,
        depth: int = 4,
        width: int = 32,
        norm: str = "batch",
        residual: bool = True,
        upsample: str = "bilinear",
    ) -> None:
        super().__init__()
        for name, value, low in (
            ("in_channels", in_channels, 1),
            ("out_channels", out_channels, 1),
            ("depth", depth, 0),
            ("width", width, 1),
        ):
            check_int(name, value, low)
        if norm not in NORMS:
            raise ValueError(f"unknown norm {norm!r}: choose one of {NORMS}")
        if upsample not in ("bilinear", "transpose"):
            raise ValueError(f"upsample must be 'bilinear' or 'transpose', got {upsample!r}")
        if residual and in_channels != out_channels:
            raise ValueError("residual=True needs in_channels == out_channels")
        self.depth, self.residual = depth, bool(residual)
        channels = [width * 2**k for k in range(depth + 1)]
        self.down = nn.ModuleList()
        c_prev = in_channels
        for c in channels:
            self.down.append(_DoubleConv(c_prev, c, norm))
            c_prev = c
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for k in reversed(range(depth)):
            c_low, c_skip = channels[k + 1], channels[k]
            if upsample == "transpose":
                self.up.append(nn.ConvTranspose2d(c_low, c_skip, 2, stride=2))
            else:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                        nn.Conv2d(c_low, c_skip, 1),
                    )
                )
            self.up_conv.append(_DoubleConv(2 * c_skip, c_skip, norm))
        self.out = nn.Conv2d(channels[0], out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, in_channels, H, W)`` -> ``(B, out_channels, H, W)``."""
        h, w = x.shape[-2:]
        m = 2**self.depth
        ph, pw = (-h) % m, (-w) % m
        y = x
        if ph or pw:
            mode = "reflect" if ph < h and pw < w else "replicate"
            y = F.pad(x, (0, pw, 0, ph), mode=mode)
        skips = []
        for k, block in enumerate(self.down):
            y = block(y)
            if k < self.depth:
                skips.append(y)
                y = F.max_pool2d(y, 2)
        for up, conv in zip(self.up, self.up_conv, strict=True):
            y = conv(torch.cat([skips.pop(), up(y)], dim=1))
        y = self.out(y)[..., :h, :w]
        return x + y if self.residual else y
