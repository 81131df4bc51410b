"""CT-like phantoms: random anatomical slices in attenuation relative to water.

A slice is a HEAD (15 %), SKULL BASE (15 %), NECK (15 %), THORAX (20 %) or ABDOMEN (35 %)
(:data:`KINDS`, :func:`draw_kind`), painted in layers of soft-edged ellipses and
superellipses (:func:`paint`; sigmoid edges of a quarter pixel's scale in the signed distance
to the boundary) on a grid of ``pixel_size`` mm (x right, y down = posterior), in Hounsfield
units ``HU`` and returned as ``mu / mu_water = 1 + HU/1000`` (clipped at 0):

- torso (thorax, abdomen): width ``U(180, 400)`` mm, depth ``U(0.6, 0.85)`` of it; skin
  (2 mm, HU 20), subcutaneous fat (5-30 mm, HU -100), muscle (8-20 mm, HU 50), soft tissue
  inside (HU 35); a vertebra (cortical shell HU 1000-1600 around trabecular bone HU
  150-350, spinal canal, posterior arch; adult size, scale 0.8-1.1); the patient table
  (p = 0.6).
  Thorax: lungs (HU -870 to -800) with 20-60 vessels (1-4 mm, HU 40), heart, aorta, 6-14 ribs.
  Abdomen: liver, spleen, kidneys, 6-16 bowel loops with air pockets (HU -1000), visceral fat.
- neck: width ``U(100, 160)`` mm, depth ``U(0.75, 0.95)`` of it, a nearly round superellipse
  (exponent 2-2.4); skin (2 mm, HU 20), subcutaneous fat (2-15 mm, at most a fifth of the
  half-depth, mostly thin, HU -100), a muscle ring (3-6 mm, HU 55), soft tissue (HU 35) with
  4-10 fat pockets (4-12 mm across); paraspinal, prevertebral, sternocleidomastoid and strap
  muscles (HU 50-60); a cervical vertebra (the torso's at scale 0.55-0.75, at most
  inner half-depth / 50 mm, arch ending near the back); the trachea (air, 12-20 mm across, up to
  1.2 times wider than deep) in a 1.5-2.5 mm cartilage wall (HU 100-200) in front; the
  oesophagus (HU 35-50; an air pocket with p = 0.3) between them; thyroid lobes either side
  of the trachea (HU 80-130); carotid arteries (6-8 mm across) and jugular veins (8-14 by
  6-10 mm) lateral to them (HU 40-60, contrast-enhanced 150-300 with p = 0.3); with
  p = 0.3 a mandible arc (5 mm thick, HU 1000-1600) in front.
- head (the cranial vault): width ``U(140, 190)`` mm; skin, a skull (5-9 mm cortical HU
  1000-1600 with diploe HU 400), brain (HU 30-40), ventricles (HU 5); air sinuses at the
  front (p = 0.5).
- skull base: width ``U(130, 170)`` mm, depth 1.1-1.3 times it; skin, fat, temporalis muscle
  (3-8 mm, HU 50) outside a 4-8 mm cortical skull; thick occipital bone at the back, the fourth
  ventricle (HU 0-15); petrous ridges (HU 1300-2000, 40-60 mm long, 10-18 mm wide, 29-52
  degrees off the transverse axis) with inner-ear fluid spaces, mastoids at their outer ends
  (bone HU 700-1200 holding 8-25 air cells of 0.8-2.5 mm radius: thin septa), on each side
  with p = 0.5 an external auditory canal through the bone; the clivus (HU 700-1300) with the
  prepontine cistern (HU 0-15) behind it and, with p = 0.8, a septated sphenoid sinus in a
  1-2 mm wall in front of it; at the front either the orbits (p = 0.5: fat in a thin bony rim,
  globe, optic nerve; the vault open in front of them) with ethmoid air cells between them,
  or the maxillary sinuses either side of the nasal cavity (turbinates, a bony septum);
  zygomatic arches (1.2 mm half-thick) in the fat along the outline (p = 0.6).
- texture: a Gaussian random field with power spectrum ``|k|^-2.5`` and 8-20 HU standard
  deviation over the whole body.
- sharp reconstruction kernel (p = 0.3): the slice's spectrum multiplied by
  ``1 + b * clamp((|k| - 0.06) / 0.19, 0, 1)`` (k in cycles/mm; ``b`` in ``U(0.8, 1.4)``),
  a boost rising from 1 at 0.6 lp/cm to ``1 + b`` from 2.5 lp/cm, as a lung or bone kernel
  shows a slice (:func:`sharpen`; the undershoot in air is clipped at HU -1000, as stored
  images clip it). Measured at 2 mm: the real-CT test set's chest series of a Philips ``L``
  kernel has 1.30 times the amplitude spectrum of its standard-kernel chests at 1.25 lp/cm and
  1.51 times at 2.5; thoraxes sharpened with ``b`` = 1.0 / 1.3 have 1.22 / 1.29 and 1.47 /
  1.63 times their own.
- field crop (p = 0.15): everything outside an axis-aligned rectangle (half-sides 50-110 mm,
  a square with p = 0.5, centre within 20 mm of the image's) set to air, as in reconstructions
  whose display field is smaller than the body (a DICOM's own field of view, or a body wider
  than the geometry's field): tissue that ends in straight, hard edges on pixel boundaries.

Statistics checked against the real CT slices of pydicom and pydicom-data (see
:mod:`learnct.data.ct_statistics` and ``tests/data/test_ctlike.py``).

Randomness: every draw comes from a CPU ``torch.Generator`` (deterministic per seed, on any
device); the rasterisation is vectorised over the shapes of a layer and runs on ``device``
(e.g. the training GPU).
"""

from __future__ import annotations

import math

import torch

__all__ = [
    "FIELD_CROP_P",
    "KINDS",
    "SHARP_KERNEL_P",
    "crop_to_field",
    "ctlike_phantom",
    "draw_kind",
    "paint",
    "sharpen",
]

KINDS = ("head", "skull_base", "neck", "thorax", "abdomen")
_KIND_P = (0.15, 0.15, 0.15, 0.20, 0.35)
#: probability of a field crop (see the module docstring)
FIELD_CROP_P = 0.15
#: probability of a sharp reconstruction kernel (see the module docstring)
SHARP_KERNEL_P = 0.3


class _Draw:
    """Uniform draws from one CPU generator (the only source of randomness of a phantom)."""

    def __init__(self, gen: torch.Generator) -> None:
        self.gen = gen

    def u(self, low: float, high: float, n: int | None = None) -> float | torch.Tensor:
        x = torch.rand(1 if n is None else n, generator=self.gen, dtype=torch.float64)
        x = low + (high - low) * x
        return float(x) if n is None else x

    def i(self, low: int, high: int) -> int:
        """An integer in ``[low, high]``."""
        return int(torch.randint(low, high + 1, (1,), generator=self.gen))

    def p(self, prob: float) -> bool:
        return self.u(0.0, 1.0) < prob


class _Canvas:
    """An ``N x N`` image in HU on a grid of ``pixel_size`` mm (x right, y down, centre 0)."""

    def __init__(self, size: int, pixel_size: float, device: torch.device | str) -> None:
        c = (torch.arange(size, device=device, dtype=torch.float32) - (size - 1) / 2) * pixel_size
        self.y, self.x = torch.meshgrid(c, c, indexing="ij")
        self.edge = 0.25 * pixel_size
        self.hu = torch.full((size, size), -1000.0, device=device)
        self.device = device

    def masks(self, shapes: torch.Tensor) -> torch.Tensor:
        """Soft masks ``(K, N, N)`` of ``shapes`` ``(K, 6)``: centre x, y (mm), half-axes a, b
        (mm), rotation (rad), exponent p (2: ellipse; larger: boxier superellipse).

        The edge is a sigmoid of the signed distance to the boundary (mm) over ``edge``: inside
        ``(1 - r) min(a, b)``, outside the larger of ``(r - 1) / |grad r|`` (first order, exact
        on the axes) and the distance to the bounding box, so a thin shape's blur stays within
        a few pixels of it at any pixel size."""
        s = shapes.to(self.device, torch.float32)
        cx, cy, a, b, t, p = (s[:, k, None, None] for k in range(6))
        dx, dy = self.x - cx, self.y - cy
        u = (dx * torch.cos(t) + dy * torch.sin(t)) / a
        v = (-dx * torch.sin(t) + dy * torch.cos(t)) / b
        if bool((s[:, 5] == 2).all()):  # ellipses: no general power (3x faster)
            r = (u * u + v * v + 1e-12).sqrt()
            grad = (u * u / (a * a) + v * v / (b * b)).sqrt() / r
        else:
            au, av = u.abs() + 1e-12, v.abs() + 1e-12
            r = (au**p + av**p) ** (1 / p)
            # |grad r| = r^(1-p) sqrt(|u|^(2p-2)/a^2 + |v|^(2p-2)/b^2), written in u/r, v/r <= 1
            # so that no power overflows far from a small shape
            grad = ((au / r) ** (2 * p - 2) / (a * a) + (av / r) ** (2 * p - 2) / (b * b)).sqrt()
        inside = (1 - r) * torch.minimum(a, b)
        # outside: the first-order distance, and far from an elongated shape the distance to
        # its bounding box (a lower bound; the first-order one underestimates there)
        box = ((u.abs() - 1).clamp_min(0) * a) ** 2 + ((v.abs() - 1).clamp_min(0) * b) ** 2
        outside = torch.maximum((r - 1) / grad.clamp_min(1e-12), box.sqrt())
        distance = torch.where(r < 1, inside, -outside)
        return torch.sigmoid(distance / self.edge)

    def paint(self, shapes: torch.Tensor, hu: torch.Tensor | float, within=None) -> torch.Tensor:
        """Paint the shapes over the image (their own values ``hu``, ``(K,)`` or one number);
        ``within``: a mask they are confined to. Returns the union mask."""
        m = self.masks(shapes)
        values = torch.as_tensor(hu, dtype=torch.float32, device=self.device)
        values = values.expand(m.shape[0])[:, None, None]
        union = 1 - torch.prod(1 - m, dim=0)
        value = (m * values).sum(0) / m.sum(0).clamp_min(1e-6)
        if within is not None:
            union = union * within
        self.hu = self.hu + union * (value - self.hu)
        return union


def paint(canvas: _Canvas, shapes: list[list[float]], hu, within=None) -> torch.Tensor:
    """Paint a list of shape rows (see :meth:`_Canvas.masks`) on ``canvas``."""
    if not shapes:
        return torch.zeros_like(canvas.hu)
    return canvas.paint(torch.tensor(shapes, dtype=torch.float64), hu, within)


def _ring_layers(c: _Canvas, d: _Draw, cx, cy, a, b, p, layers) -> tuple[float, float]:
    """Concentric layers ``(thickness mm, HU)`` inwards from half-axes ``a, b``; the inner
    half-axes left."""
    for thickness, hu in layers:
        paint(c, [[cx, cy, a, b, 0.0, p]], hu)
        a, b = a - thickness, b - thickness
    return a, b


def _vertebra(c: _Canvas, d: _Draw, cx: float, y: float, scale: float) -> None:
    r = d.u(14, 22) * scale
    cortical, shell = d.u(1000, 1600), d.u(1.5, 3.0)
    paint(c, [[cx, y, r * 1.15, r, 0.0, 2.0]], cortical)
    paint(c, [[cx, y, r * 1.15 - shell, r - shell, 0.0, 2.0]], d.u(150, 350))
    canal = y + r + 9 * scale
    arch = [
        [cx + s * 9 * scale, canal + 3 * scale, 4 * scale, 10 * scale, s * 0.6, 2.0]
        for s in (-1, 1)
    ]
    arch.append([cx, canal + 14 * scale, 3.5 * scale, 9 * scale, 0.0, 2.0])
    paint(c, arch, cortical * 0.8)
    paint(c, [[cx, canal, 8 * scale, 7 * scale, 0.0, 2.0]], d.u(0, 20))


def _scatter(d: _Draw, n: int, cx, cy, a, b, rmin, rmax) -> list[list[float]]:
    """``n`` random ellipses of radius ``[rmin, rmax]`` mm inside the ellipse (cx, cy, a, b)."""
    rho, phi = d.u(0, 1, n).sqrt(), d.u(0, 2 * math.pi, n)
    rad, asp, rot = d.u(rmin, rmax, n), d.u(0.6, 1.0, n), d.u(0, math.pi, n)
    return [
        [
            cx + a * float(q) * math.cos(f),
            cy + b * float(q) * math.sin(f),
            float(r),
            float(r * s),
            float(t),
            2.0,
        ]
        for q, f, r, s, t in zip(rho, phi, rad, asp, rot, strict=True)
    ]


def _torso(c: _Canvas, d: _Draw, thorax: bool) -> None:
    a = d.u(90, 200)
    b = a * d.u(0.6, 0.85)
    cx, cy, p = d.u(-10, 10), d.u(-15, 5), d.u(2.0, 3.0)
    if d.p(0.6):  # the patient table under the body
        ty = cy + b + d.u(5, 25)
        paint(c, [[0.0, ty + 20, a * 1.3, 20, 0.0, 6.0]], d.u(-300, 200))
        paint(c, [[0.0, ty + 20, a * 1.3 - 3, 17, 0.0, 6.0]], -1000.0)
    fat, muscle = d.u(5, 30), d.u(8, 20)
    ai, bi = _ring_layers(c, d, cx, cy, a, b, p, [(2, 20), (fat, -100), (muscle, 50)])
    paint(c, [[cx, cy, ai, bi, 0.0, p]], 35.0)
    inner = c.masks(torch.tensor([[cx, cy, ai, bi, 0.0, p]], dtype=torch.float64))[0]
    scale = min(max(ai / 130, 0.8), 1.1)  # vertebra and vessels: adult sizes
    spine_y = cy + bi - 30 * scale
    if thorax:
        lungs = [
            [cx + s * ai * 0.48, cy - bi * 0.05, ai * 0.42, bi * 0.72, s * d.u(-0.15, 0.15), 2.2]
            for s in (-1, 1)
        ]
        lung = paint(c, lungs, d.u(-870, -800), within=inner)
        vessels = [v for ls in lungs for v in _scatter(d, d.i(10, 30), *ls[:4], 0.7, 2.2)]
        paint(c, vessels, 40.0, within=lung)
        paint(
            c,
            [[cx + ai * 0.12, cy + bi * 0.05, ai * 0.32, bi * 0.42, d.u(-0.6, -0.2), 2.0]],
            d.u(30, 50),
        )
        paint(
            c,
            [[cx + d.u(-10, 10), spine_y - 32 * scale, 11 * scale, 11 * scale, 0.0, 2.0]],
            d.u(40, 200),
        )
        ribs = []
        for k in range(d.i(3, 7)):
            phi = math.pi * (0.15 + 0.7 * (k + d.u(0, 1)) / 7)
            for s in (-1, 1):
                ang = math.pi / 2 + s * (math.pi / 2 - phi) + math.pi
                ribs.append(
                    [
                        cx + (ai - 4) * math.cos(ang),
                        cy + (bi - 4) * math.sin(ang),
                        d.u(3, 6),
                        d.u(2, 4),
                        ang,
                        2.0,
                    ]
                )
        paint(c, ribs, d.u(500, 1000))
    else:
        organs = [
            [cx - ai * 0.4, cy - bi * 0.15, ai * 0.5, bi * 0.55, d.u(-0.3, 0.3), 2.0],  # liver
            [cx + ai * 0.6, cy + bi * 0.05, ai * 0.22, bi * 0.3, d.u(-0.5, 0.5), 2.0],  # spleen
        ]
        paint(c, organs[: 1 + d.i(0, 1)], d.u(50, 70), within=inner)
        paint(c, _scatter(d, d.i(3, 10), cx, cy, ai * 0.7, bi * 0.6, 5, 25), -100.0, within=inner)
        kidneys = [
            [cx + s * ai * 0.4, spine_y - 5, 28 * scale, 22 * scale, s * 0.5, 2.0] for s in (-1, 1)
        ]
        paint(c, kidneys, d.u(30, 180), within=inner)
        loops = _scatter(d, d.i(6, 16), cx + ai * 0.1, cy - bi * 0.15, ai * 0.55, bi * 0.45, 8, 22)
        paint(c, loops, d.u(10, 40), within=inner)
        air = _scatter(d, d.i(1, 8), cx + ai * 0.1, cy - bi * 0.2, ai * 0.5, bi * 0.4, 3, 14)
        paint(c, air, -1000.0, within=inner)
        if d.p(0.3):  # iliac wings (pelvis)
            wings = [
                [cx + s * ai * 0.65, cy + bi * 0.1, 12, bi * 0.45, s * 0.4, 2.0] for s in (-1, 1)
            ]
            paint(c, wings, d.u(700, 1200), within=inner)
    _vertebra(c, d, cx, spine_y, scale)


def _neck(c: _Canvas, d: _Draw) -> None:
    """A neck slice (x right, y down = posterior; mm): see the module docstring."""
    a = d.u(50, 80)
    b = a * d.u(0.75, 0.95)
    cx, cy, p = d.u(-10, 10), d.u(-10, 10), d.u(2.0, 2.4)
    fat = 2 + (min(15.0, 0.2 * b) - 2) * d.u(0, 1) ** 2  # 2-15 mm, mostly thin
    ai, bi = _ring_layers(c, d, cx, cy, a, b, p, [(2, 20), (fat, -100), (d.u(3, 6), 55)])
    paint(c, [[cx, cy, ai, bi, 0.0, p]], 35.0)
    inner = c.masks(torch.tensor([[cx, cy, ai, bi, 0.0, p]], dtype=torch.float64))[0]
    paint(c, _scatter(d, d.i(4, 10), cx, cy, ai * 0.8, bi * 0.8, 2, 6), -100.0, within=inner)
    scale = min(d.u(0.55, 0.75), bi / 50)  # cervical vertebra: a small adult lumbar one
    spine_y = cy + bi - 48 * scale  # its arch ends about 6 scale inside the muscle ring
    tr = d.u(6, 10)  # tracheal radius
    ty = max(spine_y - 18 * scale - 14 - tr, cy - bi + tr + 4)
    # Muscles: paraspinal (behind the spine), prevertebral, sternocleidomastoid, strap.
    muscles = [
        [cx + s * ai * 0.38, spine_y + 22 * scale, ai * 0.42, bi * 0.42, s * 0.3, 2.0]
        for s in (-1, 1)
    ]
    muscles += [
        [cx + s * 8 * scale, spine_y - 8 * scale, 7 * scale, 12 * scale, 0.0, 2.0] for s in (-1, 1)
    ]
    muscles += [
        [
            cx + s * ai * d.u(0.55, 0.7),
            ty + d.u(0, 10),
            d.u(6, 10),
            d.u(14, 22),
            s * d.u(0.4, 0.8),
            2.0,
        ]
        for s in (-1, 1)
    ]
    muscles.append([cx, ty - tr - 3, tr + 10, 4, 0.0, 2.0])
    paint(c, muscles, d.u(50, 60, len(muscles)), within=inner)
    # The oesophagus between the trachea and the spine (with p = 0.3 a small air pocket).
    oy, ox = (ty + spine_y - 14 * scale) / 2 + 3, cx + d.u(-5, 5)
    paint(c, [[ox, oy, d.u(6, 9), d.u(3.5, 5.5), 0.0, 2.0]], d.u(35, 50), within=inner)
    if d.p(0.3):
        paint(c, [[ox, oy, d.u(1.5, 3), d.u(1, 2), 0.0, 2.0]], -1000.0)
    # Thyroid lobes either side of the trachea; carotid arteries and jugular veins beside them.
    thyroid = [
        [cx + s * (tr + 4), ty + 2, d.u(5, 8), d.u(8, 12), s * d.u(-0.6, -0.2), 2.0]
        for s in (-1, 1)
    ]
    paint(c, thyroid, d.u(80, 130), within=inner)
    enhanced = d.p(0.3)
    low, high = (150, 300) if enhanced else (40, 60)
    side = tr + d.u(12, 18)
    arteries = [[cx + s * side, ty + 6, d.u(3, 4), d.u(3, 4), 0.0, 2.0] for s in (-1, 1)]
    veins = [
        [cx + s * (side + d.u(7, 10)), ty + 3, d.u(4, 7), d.u(3, 5), d.u(0, math.pi), 2.0]
        for s in (-1, 1)
    ]
    paint(c, arteries, d.u(low, high), within=inner)
    paint(c, veins, d.u(low, high), within=inner)
    if d.p(0.3):  # the mandible: an arc of cortical bone at the front
        n = 9
        mandible = []
        for k in range(n):
            ang = -math.pi * (0.25 + 0.5 * k / (n - 1))
            mandible.append(
                [
                    cx + ai * 0.85 * math.cos(ang),
                    cy + bi * 0.85 * math.sin(ang),
                    7,
                    2.5,
                    ang + math.pi / 2,
                    2.0,
                ]
            )
        paint(c, mandible, d.u(1000, 1600), within=inner)
    # The trachea: air inside a thin cartilage wall, slightly oval.
    ta, wall = tr * d.u(1.0, 1.2), d.u(1.5, 2.5)
    paint(c, [[cx, ty, ta + wall, tr + wall, 0.0, 2.0]], d.u(100, 200))
    paint(c, [[cx, ty, ta, tr, 0.0, 2.0]], -1000.0)
    _vertebra(c, d, cx, spine_y, scale)


def _head(c: _Canvas, d: _Draw) -> None:
    a = d.u(70, 95)
    b = a * d.u(1.1, 1.3)
    cx, cy = d.u(-10, 10), d.u(-10, 10)
    skull = d.u(5, 9)
    cortical = d.u(1000, 1600)
    ai, bi = _ring_layers(c, d, cx, cy, a, b, 2.0, [(3, 30), (d.u(2, 5), -80)])
    paint(c, [[cx, cy, ai, bi, 0.0, 2.0]], cortical)
    paint(c, [[cx, cy, ai - skull * 0.3, bi - skull * 0.3, 0.0, 2.0]], d.u(300, 600))
    paint(c, [[cx, cy, ai - skull * 0.7, bi - skull * 0.7, 0.0, 2.0]], cortical)
    ai, bi = ai - skull, bi - skull
    paint(c, [[cx, cy, ai, bi, 0.0, 2.0]], d.u(30, 40))
    v = d.u(3, 8)
    paint(c, [[cx + s * 6, cy - 5, v, 22, s * 0.3, 2.0] for s in (-1, 1)], 5.0)
    if d.p(0.5):  # air sinuses at the front (the skull base)
        paint(c, _scatter(d, d.i(1, 4), cx, cy - bi * 0.75, ai * 0.35, bi * 0.15, 4, 10), -1000.0)


def _air_cells(c: _Canvas, d: _Draw, n: int, cx, cy, a, b, rmin, rmax, bone: float) -> None:
    """A pneumatised bone: the ellipse ``(cx, cy, a, b)`` of bone (HU ``bone``) holding ``n``
    air cells (radius ``rmin``-``rmax`` mm) whose overlaps leave thin septa (partial volume)."""
    inside = paint(c, [[cx, cy, a, b, 0.0, 2.0]], bone)
    paint(c, _scatter(d, n, cx, cy, a * 0.85, b * 0.85, rmin, rmax), -1000.0, within=inside)


def _skull_base(c: _Canvas, d: _Draw) -> None:
    """A head at the level of the skull base (x right, y down = posterior; mm): see the
    module docstring."""
    a = d.u(65, 85)
    b = a * d.u(1.1, 1.3)
    cx, cy = d.u(-10, 10), d.u(-10, 10)
    fat, temporalis = d.u(2, 5), d.u(3, 8)
    ai, bi = _ring_layers(c, d, cx, cy, a, b, 2.0, [(3, 30), (fat, -80), (temporalis, 50)])
    skull, cortical = d.u(4, 8), d.u(1000, 1600)
    vault = paint(c, [[cx, cy, ai, bi, 0.0, 2.0]], cortical)  # the skull and all inside it
    ai, bi = ai - skull, bi - skull
    inner = paint(c, [[cx, cy, ai, bi, 0.0, 2.0]], d.u(30, 40))
    # Posterior fossa: thick occipital bone at the back, the fourth ventricle.
    paint(c, [[cx, cy + bi, d.u(10, 18), d.u(5, 10), 0.0, 2.0]], cortical, within=inner)
    paint(c, [[cx, cy + bi * d.u(0.25, 0.4), d.u(3, 6), d.u(2, 4), 0.0, 2.0]], d.u(0, 15))
    _temporal_bones(c, d, cx, cy, ai, bi, skull, inner)
    # The clivus and the sphenoid body in the middle, the prepontine cistern behind the clivus,
    # the sphenoid sinus in front of it.
    clivus_y, clivus_b = cy - bi * 0.05, d.u(10, 16)
    paint(c, [[cx, clivus_y, d.u(7, 11), clivus_b, 0.0, 2.0]], d.u(700, 1300))
    cistern_b = d.u(2, 4)
    cistern = [[cx, clivus_y + clivus_b + cistern_b, d.u(10, 16), cistern_b, 0.0, 2.0]]
    paint(c, cistern, d.u(0, 15), within=inner)
    sy = cy - bi * d.u(0.3, 0.4)
    if d.p(0.8):
        sa, sb, wall = d.u(8, 15), d.u(6, 12), d.u(1, 2)
        paint(c, [[cx, sy, sa + wall, sb + wall, 0.0, 2.0]], cortical)
        septum = d.u(-sa * 0.3, sa * 0.3)  # a 1 mm bony septum off the midline
        cavity = paint(c, [[cx, sy, sa, sb, 0.0, 2.0]], -1000.0)
        paint(c, [[cx + septum, sy, 0.5, sb, 0.0, 2.0]], cortical, within=cavity)
    _face(c, d, cx, cy, ai, bi, skull, vault)
    if d.p(0.6):  # zygomatic arches: thin bone in the fat, lateral to the temporalis muscle
        arches = []
        for k in range(3):
            dy = -bi * (0.15 + 0.2 * k)
            root = math.sqrt(1 - (dy / b) ** 2)
            edge = a * root - 3 - fat / 2  # mid-fat at this depth
            tilt = math.atan(-a * dy / (b * b * root))  # along the outline: dx/dy of the ellipse
            arches += [[cx + s * edge, cy + dy, 1.2, d.u(6, 9), -s * tilt, 2.0] for s in (-1, 1)]
        paint(c, arches, d.u(800, 1400))


def _temporal_bones(c: _Canvas, d: _Draw, cx, cy, ai, bi, skull, inner) -> None:
    """Petrous ridges either side of a skull base (inner half-axes ``ai, bi`` mm, bone
    ``skull`` mm thick, ``inner`` its inside mask): dense bone from the clivus posterolaterally
    (29-52 degrees off the transverse axis), inner-ear fluid spaces inside; mastoid air cells at
    their outer ends; sometimes the external auditory canal."""
    theta, length, width = d.u(0.5, 0.9), d.u(20, 30), d.u(5, 9)
    py = cy + bi * d.u(0.0, 0.2)
    for s in (-1, 1):
        px = cx + s * ai * d.u(0.4, 0.5)
        paint(c, [[px, py, length, width, s * theta, 2.0]], d.u(1300, 2000), within=inner)
        ear = [[px + s * d.u(-4, 4), py + d.u(-2, 2), d.u(1.5, 3), d.u(1, 2), d.u(0, 3), 2.0]]
        paint(c, ear, d.u(0, 30))
        mx = px + s * length * 0.8 * math.cos(theta)
        my = py + length * 0.8 * math.sin(theta)
        r = d.u(8, 15)
        _air_cells(c, d, d.i(8, 25), mx, my, r, r * d.u(0.7, 1.0), 0.8, 2.5, d.u(700, 1200))
        if d.p(0.5):  # the external auditory canal: air through the bone, not into the brain
            canal = [[cx + s * (ai + skull), py, skull + 6, d.u(2, 4), 0.0, 2.0]]
            paint(c, canal, -1000.0, within=1 - inner)


def _face(c: _Canvas, d: _Draw, cx, cy, ai, bi, skull, vault) -> None:
    """The front of a skull base (inner half-axes ``ai, bi`` mm): either the orbits (fat in a
    thin bony rim, globe, optic nerve) with ethmoid air cells between them, or, lower, the
    nasal cavity (septum, turbinates) between the maxillary sinuses; ``skull``: the vault's
    bone thickness (mm) and ``vault`` its outer mask, opened in front of the orbits."""
    if d.p(0.5):  # the orbits: fat in a thin bony rim, the globe at the front, ethmoid cells
        depth = (0.25 * bi + skull) / 2 + 2  # from the orbits' centres to the bone's front
        front = [[cx, cy - 0.75 * bi - depth + 2, ai * 0.5 + 20, depth, 0.0, 6.0]]
        paint(c, front, 30.0, within=vault)  # no vault bone in front of the globes
        for s in (-1, 1):
            ox, oy, oa, ob = cx + s * ai * d.u(0.4, 0.5), cy - bi * 0.75, d.u(13, 17), d.u(17, 22)
            paint(c, [[ox, oy, oa + 2, ob + 2, s * 0.3, 2.0]], d.u(800, 1200))
            paint(c, [[ox, oy, oa, ob, s * 0.3, 2.0]], d.u(-100, -70))
            paint(c, [[ox, oy + ob * 0.2, 2, ob * 0.6, s * 0.3, 2.0]], 30.0)  # optic nerve
            paint(c, [[ox, oy - ob * 0.55, 11.5, 11.5, 0.0, 2.0]], d.u(5, 20))  # globe
        n = d.i(8, 20)
        _air_cells(c, d, n, cx, cy - bi * 0.7, d.u(6, 10), d.u(15, 22), 1.5, 4, d.u(400, 800))
    else:  # lower: the nasal cavity (septum, turbinates) between the maxillary sinuses
        for s in (-1, 1):
            mx, my = cx + s * ai * d.u(0.4, 0.5), cy - bi * d.u(0.65, 0.75)
            ma, mb, wall = d.u(12, 18), d.u(10, 16), d.u(1, 2)
            paint(c, [[mx, my, ma + wall, mb + wall, 0.0, 2.0]], d.u(800, 1200))
            paint(c, [[mx, my, ma, mb, 0.0, 2.0]], -1000.0)
            if d.p(0.3):  # mucosal thickening
                paint(c, [[mx, my + mb * 0.7, ma * 0.8, mb * 0.3, 0.0, 2.0]], d.u(20, 50))
        ny, na, nb = cy - bi * 0.75, d.u(7, 11), d.u(16, 24)
        paint(c, [[cx, ny, na, nb, 0.0, 2.0]], -1000.0)
        turbinates = [
            [cx + s * na * 0.6, ny + d.u(-5, 5), 3, d.u(8, 14), 0.0, 2.0] for s in (-1, 1)
        ]
        paint(c, turbinates, d.u(20, 50))
        paint(c, [[cx, ny, 0.8, nb, 0.0, 2.0]], d.u(600, 1000))  # the nasal septum


def _texture(d: _Draw, size: int, pixel_size: float, device) -> torch.Tensor:
    """A zero-mean, unit-std Gaussian field with power spectrum ``|k|^-2.5`` (k in 1/mm)."""
    white = torch.randn(size, size, generator=d.gen).to(device)
    k = torch.fft.fftfreq(size, d=pixel_size, device=device)
    kk = (k[:, None] ** 2 + k[None, :] ** 2).sqrt().clamp_min(1 / (size * pixel_size))
    field = torch.fft.ifft2(torch.fft.fft2(white) * kk ** (-2.5 / 2)).real
    field = field - field.mean()
    return field / field.std().clamp_min(1e-12)


#: The painter of each kind of slice (all randomness from the ``_Draw``).
_PAINTERS = {
    "head": _head,
    "skull_base": _skull_base,
    "neck": _neck,
    "thorax": lambda c, d: _torso(c, d, thorax=True),
    "abdomen": lambda c, d: _torso(c, d, thorax=False),
}


def draw_kind(generator: torch.Generator) -> str:
    """The kind of a slice, one of :data:`KINDS` with probabilities ``_KIND_P``: the first
    draw :func:`ctlike_phantom` makes from its generator."""
    return KINDS[int(torch.multinomial(torch.tensor(_KIND_P), 1, generator=generator))]


def ctlike_phantom(
    generator: torch.Generator,
    size: int,
    pixel_size: float,
    device: torch.device | str = "cpu",
    kind: str | None = None,
    field_crop: bool | None = None,
    sharp_kernel: bool | None = None,
) -> torch.Tensor:
    """One CT-like slice ``(size, size)`` float32 in ``mu / mu_water`` on ``device``, drawn
    from ``generator`` (a CPU generator; see the module docstring).

    ``kind``: one of :data:`KINDS` to force it; the kind is drawn from ``generator`` even
    then, so a forced kind gives the default slice whenever the seed draws that kind.
    ``field_crop``, ``sharp_kernel``: force (True) or forbid (False) the field crop or the
    sharp kernel, drawn likewise."""
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown CT-like kind {kind!r}; use one of {KINDS} or None (random)")
    d = _Draw(generator)
    c = _Canvas(size, pixel_size, device)
    drawn = draw_kind(generator)
    _PAINTERS[kind or drawn](c, d)
    crop = d.p(FIELD_CROP_P)  # the crop's draws are made either way: field_crop changes no other
    half_x, half_y, square = d.u(50, 110), d.u(50, 110), d.p(0.5)
    centre = d.u(-20, 20), d.u(-20, 20)
    sharp, boost = d.p(SHARP_KERNEL_P), d.u(0.8, 1.4)  # drawn either way, like the crop's
    # The texture last: its size x size draws must not shift any draw of the anatomy or crop.
    body = (c.hu > -950).float()
    c.hu = c.hu + body * d.u(8, 20) * _texture(d, size, pixel_size, device)
    if sharp if sharp_kernel is None else sharp_kernel:  # the kernel, then the field's cut
        c.hu = sharpen(c.hu, pixel_size, boost)
    if crop if field_crop is None else field_crop:
        crop_to_field(c, *centre, half_x, half_x if square else half_y)
    return (1 + c.hu / 1000).clamp_min(0)


#: How far (mm) :func:`sharpen` continues an image's border pixels before filtering: a few
#: times the 16 mm wavelength where its gain starts (0.06 cycles/mm).
SHARPEN_MARGIN_MM = 64.0


def sharpen(hu: torch.Tensor, pixel_size: float, boost: float) -> torch.Tensor:
    """``hu`` (N x N, pixels of ``pixel_size`` mm) with its spectrum multiplied by
    ``1 + boost * clamp((|k| - 0.06) / 0.19, 0, 1)`` (k in cycles/mm): 1 below 0.6 lp/cm,
    ``1 + boost`` from 2.5 lp/cm (a sharp kernel's edge enhancement; module docstring). The
    mean is kept; the edges overshoot, as in real sharp-kernel images. The image is filtered
    with its border pixels continued by :data:`SHARPEN_MARGIN_MM` (replicated), not
    periodically: a body cut by the field's edge (the scanner's image went on past it) would
    otherwise meet the opposite edge's air and overshoot there."""
    pad = math.ceil(SHARPEN_MARGIN_MM / pixel_size)
    padded = torch.nn.functional.pad(hu[None, None], (pad,) * 4, mode="replicate")[0, 0]
    k = torch.fft.fftfreq(padded.shape[-1], d=pixel_size, device=hu.device)
    kk = (k[:, None] ** 2 + k[None, :] ** 2).sqrt()
    gain = 1 + boost * ((kk - 0.06) / 0.19).clamp(0, 1)
    sharp = torch.fft.ifft2(torch.fft.fft2(padded) * gain).real
    return sharp[pad:-pad, pad:-pad]


def crop_to_field(c: _Canvas, cx: float, cy: float, half_x: float, half_y: float) -> None:
    """Set every pixel whose centre is outside the rectangle ``|x - cx| <= half_x``,
    ``|y - cy| <= half_y`` (mm) to air (HU -1000): a hard edge on pixel boundaries, as a
    display field cut on the image's own grid (no partial volume)."""
    inside = ((c.x - cx).abs() <= half_x) & ((c.y - cy).abs() <= half_y)
    c.hu = torch.where(inside, c.hu, torch.full_like(c.hu, -1000.0))
