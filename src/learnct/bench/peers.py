"""Peer projectors for the projector section: pip-installable pure-PyTorch ray transforms
(the ``peers`` extra), given our geometry in their units and returning our units.

Each peer gets the same fan-beam geometry as ours (source and detector distances, detector
spacing, angles, image size and pixel size) and is scaled to line integrals in image units x
mm, its adjoint by the same factor. Their discretisations differ from Joseph's, so the label
says which; the geometry is checked in ``tests/bench/test_bench_peers.py`` against our sinogram
of an off-centre disc.

- torchtomo (``FanBeam``): ``N`` bilinear samples per ray over the ray's chord through the
  inscribed circle, exact adjoint (grid_sample's backward). Its unit is ``2 / N`` of the
  half-width between the outer pixel centres, so mm map to its "pixels" as ``N / ((N-1) px)``.
- deepinv (``Tomography(fan_beam=True)``): the image zero-padded to ``ceil(sqrt(2) N)``, one
  bilinear sample per padded column along each ray, summed without the ray's slant (no
  ``1/cos``), adjoint by autograd. Where its padding would move the rotation centre by half a
  pixel, the image goes on an ``N + 1`` canvas. PyPI's torchvision (which deepinv imports) is
  built against CUDA torch, so deepinv does not import beside the CPU torch wheel: it is left
  out of the ``peers`` extra and timed only where it imports.

Parallel-beam geometries are skipped with a note: torchtomo's parallel projector has one
detector bin per pixel and deepinv's one per padded pixel, neither our detector spacing.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from learnct.physics import FanBeamGeometry, Geometry

__all__ = ["PEERS", "Peer", "PeerProjector", "PeerUnavailable", "peer_projector"]


class PeerUnavailable(Exception):
    """The peer cannot run this geometry here; the message says why."""


@dataclass(frozen=True)
class PeerProjector:
    """A peer's ``forward`` and ``adjoint`` on ``(B, 1, N, N)`` / ``(B, 1, A, D)`` tensors in
    our units, called like a ``RayTransform``."""

    label: str
    forward: Callable[[torch.Tensor], torch.Tensor]
    backward: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.backward(y)


def _angles(geometry: Geometry) -> torch.Tensor:
    """Our projection angles ``theta_i`` in radians, float64."""
    i = torch.arange(geometry.n_angles, dtype=torch.float64)
    return geometry.angle_offset + i * geometry.angle_step


def _fan(geometry: Geometry, peer: str) -> FanBeamGeometry:
    if not isinstance(geometry, FanBeamGeometry):
        raise PeerUnavailable(f"{peer} has no detector spacing for parallel beam: fan beam only")
    return geometry


def _torchtomo(geometry: Geometry, device: torch.device) -> PeerProjector:
    """torchtomo's ``FanBeam``: our source at angle ``theta`` is its source at ``-theta`` (its
    image y axis points down, ours up); its detector bins run the way ours do."""
    import torchtomo

    geometry = _fan(geometry, "torchtomo")
    n, px = geometry.image_size, geometry.pixel_size
    per_mm = n / ((n - 1) * px)  # torchtomo "pixels" per mm
    op = torchtomo.FanBeam(
        img_size=n,
        n_angles=geometry.n_angles,
        n_det=geometry.n_detectors,
        src_dist=geometry.source_radius * per_mm,
        det_dist=geometry.detector_radius * per_mm,
        det_width=(geometry.n_detectors - 1) * geometry.detector_spacing * per_mm,
        angles=(-_angles(geometry)).to(torch.float32),
        circle=False,
        backend="auto",
    ).to(device)
    scale = px * (n - 1) / 2  # mm per unit of its normalised coordinates
    label = f"torchtomo {torchtomo.__version__} ({op.backend}; N samples per ray, exact adjoint)"
    return PeerProjector(label, lambda x: op(x) * scale, lambda y: op.adjoint(y) * scale)


def _deepinv_canvas(n: int) -> int:
    """The width (``n`` or ``n + 1``) of the zero-padded canvas, image in its top left, that
    puts our image's centre on deepinv's rotation centre: deepinv pads a ``w``-wide image to
    ``ceil(sqrt(2) w)`` with ``(w + pad) // 2 - w // 2`` columns before it, which for some
    ``w`` moves the centre by half a pixel."""
    for width in (n, n + 1):
        pad = math.ceil(math.sqrt(2) * width - width)
        before = (width + pad) // 2 - width // 2
        if 2 * before + n - 1 == width + pad - 1:  # image centre == padded centre
            return width
    raise PeerUnavailable(f"deepinv cannot centre a {n}-pixel image")


def _deepinv(geometry: Geometry, device: torch.device) -> PeerProjector:
    """deepinv's fan-beam ``Tomography``: our angle ``theta`` is its ``theta + 90`` degrees,
    sinograms transposed (``(B, 1, D, A)``); its pixel spacing is set so that its normalised
    coordinates (``2 / (M px)`` per mm, ``M`` the padded size) equal the padded image's."""
    from deepinv.physics import Tomography

    geometry = _fan(geometry, "deepinv")
    n, px = geometry.image_size, geometry.pixel_size
    width = _deepinv_canvas(n)
    padded = math.ceil(math.sqrt(2) * width)
    fan = {
        "pixel_spacing": px * (padded - 1) / padded,
        "source_radius": geometry.source_radius,
        "detector_radius": geometry.detector_radius,
        "n_detector_pixels": geometry.n_detectors,
        "detector_spacing": geometry.detector_spacing,
    }
    degrees = torch.rad2deg(_angles(geometry)) + 90
    op = Tomography(
        angles=degrees.to(torch.float32).to(device),
        img_width=width,
        circle=False,
        normalize=False,
        fan_beam=True,
        fan_parameters=fan,
        device=device,
    )
    extra = width - n

    def forward(x: torch.Tensor) -> torch.Tensor:
        canvas = torch.nn.functional.pad(x, (0, extra, 0, extra)) if extra else x
        return op.A(canvas).transpose(-1, -2) * px

    def adjoint(y: torch.Tensor) -> torch.Tensor:
        return op.A_adjoint(y.transpose(-1, -2))[..., :n, :n] * px

    version = importlib.metadata.version("deepinv")
    label = f"deepinv {version} (one sample per padded pixel, no slant weight, autograd adjoint)"
    return PeerProjector(label, forward, adjoint)


@dataclass(frozen=True)
class Peer:
    """A peer: the module it imports, how to install it, and its builder."""

    module: str
    install: str
    build: Callable[[Geometry, torch.device], PeerProjector]


#: peer name -> Peer.
PEERS: dict[str, Peer] = {
    "torchtomo": Peer("torchtomo", "pip install -e '.[peers]'", _torchtomo),
    "deepinv": Peer(
        "deepinv", "pip install deepinv==0.5.0 beside a CUDA torch and its torchvision", _deepinv
    ),
}


def peer_projector(name: str, geometry: Geometry, device: torch.device | str) -> PeerProjector:
    """Peer ``name`` (a key of ``PEERS``) for ``geometry`` on ``device``; raises
    ``PeerUnavailable`` saying why where it is not installed, does not import, or has no
    such geometry."""
    peer = PEERS[name]
    try:
        importlib.import_module(peer.module)
    except ModuleNotFoundError as err:
        if err.name != peer.module:  # installed, but one of its imports is missing
            raise PeerUnavailable(f"{name} does not import here: {err}") from err
        raise PeerUnavailable(f"{name} is not installed ({peer.install})") from err
    except Exception as err:  # e.g. deepinv's torchvision, built for CUDA torch
        first = (str(err).strip().splitlines() or [""])[0][:120]
        raise PeerUnavailable(
            f"{name} does not import here: {type(err).__name__}: {first}"
        ) from err
    return peer.build(geometry, torch.device(device))
