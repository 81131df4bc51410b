"""Discrete image gradient, its adjoint and the gradient of (smoothed) isotropic TV.

``gradient`` uses forward differences with a zero difference at the last row / column
(Neumann boundary), ``divergence`` is minus its adjoint (``<grad u, p> = -<u, div p>``) and
``||gradient|| <= sqrt(8)`` (Chambolle 2004).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["divergence", "gradient", "tv_gradient", "tv_norm"]


def gradient(u: torch.Tensor) -> torch.Tensor:
    """Forward differences of ``u`` ``(B, C, H, W)`` -> ``(B, C, 2, H, W)`` (rows, columns)."""
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    dx = F.pad(u[..., :, 1:] - u[..., :, :-1], (0, 1, 0, 0))
    return torch.stack([dy, dx], dim=-3)


def divergence(p: torch.Tensor) -> torch.Tensor:
    """``-gradient^T p`` for ``p`` ``(B, C, 2, H, W)`` -> ``(B, C, H, W)``."""
    py, px = p[..., 0, :, :], p[..., 1, :, :]
    # Adjoint of the forward difference with the last difference set to zero.
    dy = F.pad(py[..., :-1, :], (0, 0, 0, 1)) - F.pad(py[..., :-1, :], (0, 0, 1, 0))
    dx = F.pad(px[..., :, :-1], (0, 1, 0, 0)) - F.pad(px[..., :, :-1], (1, 0, 0, 0))
    return dy + dx


def tv_norm(u: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Isotropic total variation ``sum sqrt(|grad u|^2 + eps^2)`` per sample ``(B,)``."""
    g = gradient(u)
    return torch.sqrt((g * g).sum(-3) + eps**2).flatten(1).sum(1)


def tv_gradient(u: torch.Tensor, eps: float = 1e-2) -> torch.Tensor:
    """Gradient of ``tv_norm(u, eps)`` in ``u``: ``-div(grad u / sqrt(|grad u|^2 + eps^2))``.

    ``eps`` (in the units of ``u``) smooths the kink at zero gradient.
    """
    g = gradient(u)
    return -divergence(g / torch.sqrt((g * g).sum(-3, keepdim=True) + eps**2))
