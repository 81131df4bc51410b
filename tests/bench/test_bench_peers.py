"""Peer projectors (``learnct.bench.peers``): each is given our geometry (checked on an
off-centre disc's sinogram against ours), times in the projector section, and is a note row
where it is not installed or has no such geometry."""

from __future__ import annotations

import importlib

import pytest
import torch

from learnct.bench import peers
from learnct.bench.projectors import adjoint_error, projector_inputs, projector_rows
from learnct.physics import FanBeamGeometry, ParallelBeamGeometry, RayTransform

GEOMETRY = FanBeamGeometry(image_size=64, n_angles=60, n_detectors=96, pixel_size=2.0)


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # not installed, or (deepinv) its torchvision needs CUDA torch
        return False
    return True


#: peer -> its relative L2 distance bound from our sinogram of the disc (measured: torchtomo
#: 0.017, its N samples per chord; deepinv 0.005). A pixel size 10% off gives 0.08 / 0.10,
#: angles 3 degrees off 0.05 / 0.05, a mirrored angle direction far more.
TOLERANCE = {"torchtomo": 0.03, "deepinv": 0.02}
PEERS = [
    pytest.param(name, marks=pytest.mark.skipif(not _importable(name), reason=f"no {name}"))
    for name in TOLERANCE
]


def _disc(geometry: FanBeamGeometry, cx: float, cy: float, radius: float) -> torch.Tensor:
    """A disc centred at ``(cx, cy)`` mm (y up), radius in mm: ``(1, 1, N, N)``."""
    c = (torch.arange(geometry.image_size) - (geometry.image_size - 1) / 2) * geometry.pixel_size
    inside = (c[None, :] - cx) ** 2 + (-c[:, None] - cy) ** 2 <= radius**2
    return inside.float()[None, None]


def _distance(name: str, geometry: FanBeamGeometry, disc: torch.Tensor, ours: torch.Tensor):
    theirs = peers.peer_projector(name, geometry, "cpu")(disc)
    assert theirs.shape == ours.shape
    return float((theirs - ours).norm() / ours.norm())


@pytest.mark.parametrize("name", PEERS)
def test_peer_sinogram_of_an_off_centre_disc_matches_ours(name):
    disc = _disc(GEOMETRY, 18, 10, 25)
    ours = RayTransform(GEOMETRY, backend="sparse")(disc)
    assert _distance(name, GEOMETRY, disc, ours) < TOLERANCE[name]
    # the same check rejects a wrong scale or angle
    wrong_scale = FanBeamGeometry(image_size=64, n_angles=60, n_detectors=96, pixel_size=2.2)
    assert _distance(name, wrong_scale, disc, ours) > 2 * TOLERANCE[name]
    turned = FanBeamGeometry(
        image_size=64, n_angles=60, n_detectors=96, pixel_size=2.0, angle_offset=0.05
    )
    assert _distance(name, turned, disc, ours) > TOLERANCE[name]


@pytest.mark.parametrize("name", PEERS)
def test_peer_adjoint_is_its_forwards_transpose(name):
    peer = peers.peer_projector(name, GEOMETRY, "cpu")
    x, y = projector_inputs(GEOMETRY, 2, "cpu")
    assert peer.adjoint(y).shape == x.shape
    assert adjoint_error(peer, x, y) < 1e-5


@pytest.mark.skipif(not _importable("torchtomo"), reason="no torchtomo")
def test_projector_rows_time_a_peer_and_note_a_parallel_geometry():
    small = FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24)
    parallel = ParallelBeamGeometry(image_size=16, n_angles=6, n_detectors=23)
    rows = projector_rows([small, parallel], ["sparse"], 2, "cpu", 1, peers=["torchtomo"])
    assert [r["backend"] for r in rows] == ["sparse", rows[1]["backend"], "sparse", "torchtomo"]
    assert rows[1]["backend"].startswith("torchtomo 0.5.0 (torch; N samples per ray")
    assert float(rows[1]["forward ms"]) > 0 and float(rows[1]["adjoint error"]) < 1e-5
    assert rows[1]["memory MB"] == "-" and rows[1]["build s"] == "-"
    assert rows[3]["note"] == (
        "skipped: torchtomo has no detector spacing for parallel beam: fan beam only"
    )


def test_a_missing_peer_is_a_note_row(monkeypatch):
    monkeypatch.setitem(
        peers.PEERS, "absent", peers.Peer("learnct_no_such_module", "pip install absent", None)
    )
    (row,) = projector_rows([GEOMETRY], [], 2, "cpu", 1, peers=["absent"])
    assert row["note"] == "skipped: absent is not installed (pip install absent)"
    assert "forward ms" not in row


def test_deepinv_canvas_centres_the_image_on_its_rotation_centre():
    """deepinv's padding is centred for 128 but half a pixel off for 64 and 512."""
    assert [peers._deepinv_canvas(n) for n in (64, 128, 512)] == [65, 128, 513]
