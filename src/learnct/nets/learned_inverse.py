"""A fully learned reconstruction network: data straight to images, no operator inside.

Architecture (after iRadonMap, He et al. 2020, IEEE TMI, simplified):

1. **Per-angle 1D processing**: the same learned dense map ``R^D -> R^D`` over the detector
   pixels of every angle (a learned, not necessarily shift-invariant, "filter"), started at
   the identity. ``D^2`` parameters.
2. **Learned backprojection**: pixel ``p`` receives ``sum_a sum_k W[p, a, k] q[a, j(p, a) + k]``
   with a learned weight for every (pixel, angle, tap). The geometry only fixes WHICH
   detector bins a pixel may connect to (``j(p, a)``: the bin below the point where the ray
   through the pixel's centre hits the detector, ``taps`` consecutive bins); the weights are
   free parameters (started at linear interpolation divided by the number of angles). The
   operator is never applied. ``N^2 * n_angles * taps`` parameters.
3. **A small residual CNN** (``layers`` 3x3 convolutions of ``hidden`` channels with PReLU).

Why fully learned methods do not scale (Adler and Öktem's argument): a dense map from data
to image has ``N^2 * n_angles * n_detectors`` weights (838 M at 128^2 with 200 x 256 data,
2.6 x 10^11 at 512^2 with 1000 x 1000), and even the sparse, geometry-patterned layer here
grows as ``N^2 * n_angles * taps`` (3.3 M at 128^2, 262 M at 512^2 with one tap); training
memory adds gradients, two Adam moments and the gathered activations per sample. See
:func:`learned_inverse_memory` for numbers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from learnct.checks import check_int
from learnct.physics.geometry import FanBeamGeometry, Geometry

__all__ = ["LearnedInverseNet", "detector_coordinates", "learned_inverse_memory"]


def detector_coordinates(geometry: Geometry) -> torch.Tensor:
    """Fractional detector index ``(n_angles, N*N)`` where the ray through each pixel centre
    meets the detector (conventions of :mod:`learnct.physics.geometry`; pixels row-major)."""
    n = geometry.image_size
    c = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * geometry.pixel_size
    x = c[None, :].expand(n, n).reshape(-1)
    y = (-c)[:, None].expand(n, n).reshape(-1)
    theta = geometry.angles(torch.float64)[:, None]
    cos, sin = torch.cos(theta), torch.sin(theta)
    along = x * cos + y * sin  # p . omega
    if isinstance(geometry, FanBeamGeometry):
        depth = geometry.source_radius + (-x * sin + y * cos)  # R_s + p . omega_perp
        t = geometry.source_to_detector * along / depth
    else:
        t = along
    return t / geometry.detector_spacing + (geometry.n_detectors - 1) / 2


def learned_inverse_memory(
    image_size: int,
    n_angles: int,
    n_detectors: int,
    taps: int = 1,
    hidden: int = 32,
    layers: int = 4,
    batch: int = 1,
) -> dict[str, float]:
    """Parameter count and training memory (GiB, float32) of :class:`LearnedInverseNet`,
    and the parameter count of a dense data-to-image layer, for one geometry size.

    ``dense_train_gib``: the same for a dense layer's parameters alone.
    ``train_gib``: parameters + gradients + Adam's two moments + the gathered backprojection
    activations kept for the backward pass (``batch * n_angles * N^2 * taps``), plus the CNN's
    activations; a lower bound (no framework overhead).
    """
    pixels = image_size**2
    backprojection = pixels * n_angles * taps
    filt = n_detectors**2 + n_detectors
    cnn = (9 * hidden + hidden) + hidden
    cnn += (layers - 2) * (9 * hidden * hidden + hidden + hidden) + (9 * hidden + 1)
    params = backprojection + filt + cnn
    activations = batch * (n_angles * pixels * taps + 2 * layers * hidden * pixels)
    gib = 4 / 2**30
    return {
        "image_size": image_size,
        "n_angles": n_angles,
        "n_detectors": n_detectors,
        "parameters": params,
        "backprojection_parameters": backprojection,
        "train_gib": (4 * params + activations) * gib,
        "dense_parameters": pixels * n_angles * n_detectors,
        "dense_train_gib": 4 * pixels * n_angles * n_detectors * gib,
    }


class LearnedInverseNet(nn.Module):
    """Fully learned data-to-image network (see module docstring).

    Args:
        geometry: fixes the shapes and the connectivity of the backprojection layer.
        taps: consecutive detector bins per (pixel, angle): 1 (nearest bin, 3.3 M
            parameters at 128^2 with 200 angles) or 2 (can represent linear interpolation,
            twice the parameters).
        hidden, layers: width and number of 3x3 convolutions of the CNN (``layers >= 2``).
    """

    def __init__(self, geometry: Geometry, taps: int = 1, hidden: int = 32, layers: int = 4):
        super().__init__()
        if not isinstance(geometry, Geometry):
            raise ValueError(f"geometry must be a Geometry, got {type(geometry).__name__}")
        for name, value, low in (("taps", taps, 1), ("hidden", hidden, 1), ("layers", layers, 2)):
            check_int(name, value, low)
        self.image_size = geometry.image_size
        self.n_angles, self.n_detectors = geometry.sinogram_shape
        self.taps = taps
        d = self.n_detectors
        self.filter = nn.Linear(d, d)
        with torch.no_grad():
            self.filter.weight.copy_(torch.eye(d))
            self.filter.bias.zero_()
        pos = detector_coordinates(geometry)  # (A, P)
        low = torch.floor(pos)
        frac = pos - low
        # Taps k = 0..taps-1 read bin low + k - (taps // 2 - 1) (centred on the ray).
        first = low - (taps // 2 - 1) if taps > 1 else torch.round(pos)
        index = first.clamp(-1, d).long() + 1  # +1: a zero bin is padded on both sides
        weight = torch.zeros(*pos.shape, taps, dtype=torch.float64)
        inside = (pos >= 0) & (pos <= d - 1)
        if taps == 1:
            weight[..., 0] = inside.double()
        else:
            k0 = taps // 2 - 1
            weight[..., k0] = (1 - frac) * inside
            weight[..., k0 + 1] = frac * inside
        self.register_buffer("index", index, persistent=False)  # (A, P)
        self.backprojection = nn.Parameter(
            (weight * (math.pi / self.n_angles)).permute(1, 0, 2).contiguous().float()
        )  # (P, A, taps)
        convs: list[nn.Module] = [nn.Conv2d(1, hidden, 3, padding=1), nn.PReLU(hidden)]
        for _ in range(layers - 2):
            convs += [nn.Conv2d(hidden, hidden, 3, padding=1), nn.PReLU(hidden)]
        convs.append(nn.Conv2d(hidden, 1, 3, padding=1))
        self.cnn = nn.Sequential(*convs)

    def forward(self, g: torch.Tensor) -> torch.Tensor:
        """Data ``(B, 1, n_angles, n_detectors)`` -> images ``(B, 1, N, N)``."""
        b = g.shape[0]
        q = self.filter(g[:, 0])  # (B, A, D)
        pad = self.taps
        q = nn.functional.pad(q, (1, pad))  # zero bins: index 0 and D+1 .. D+taps
        out = q.new_zeros(b, self.backprojection.shape[0])
        for k in range(self.taps):
            idx = (self.index + k).unsqueeze(0).expand(b, -1, -1)  # (B, A, P)
            samples = torch.gather(q, 2, idx)  # (B, A, P)
            out = out + torch.einsum("bap,pa->bp", samples, self.backprojection[..., k])
        image = out.reshape(b, 1, self.image_size, self.image_size)
        return image + self.cnn(image)
