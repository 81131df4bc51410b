"""Acquisition geometries for 2D CT: fan beam with a flat detector, and parallel beam.

Conventions (shared by every backend, FBP and the analytic phantoms):

- The image is square, ``image_size`` x ``image_size`` pixels of ``pixel_size`` mm, centred
  on the rotation axis. Pixel ``(i, j)`` (row ``i``, column ``j``) has its centre at
  ``x = (j - (N-1)/2) * pixel_size``, ``y = ((N-1)/2 - i) * pixel_size`` (row 0 at the top,
  y pointing up), so arrays display the way they are imaged.
- For the angle ``theta`` let ``omega = (cos theta, sin theta)`` (the detector axis) and
  ``omega_perp = (-sin theta, cos theta)`` (the direction of the central ray).
- Parallel beam: detector pixel ``k`` at offset ``t_k`` measures the line integral along
  ``{t_k * omega + s * omega_perp}``, i.e. the Radon transform ``p(theta, t)``.
- Fan beam: the source sits at ``-source_radius * omega_perp``, the flat detector's centre at
  ``detector_radius * omega_perp``, the detector pixel ``k`` at
  ``detector_radius * omega_perp + t_k * omega``; each ray runs from the source to a pixel.
- Detector pixel centres are ``t_k = (k - (n_detectors-1)/2) * detector_spacing`` mm.
- Angles are ``angle_offset + k * angle_range / n_angles`` radians, ``k = 0..n_angles-1``.

Line integrals are in (image units) x mm.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields

import torch

from learnct.checks import check_int, check_positive

__all__ = [
    "FanBeamGeometry",
    "Geometry",
    "ParallelBeamGeometry",
    "geometry_differences",
    "geometry_from_record",
    "geometry_record",
]


#: Lengths (mm) outside this range are almost surely a unit mistake (and under/overflow float32).
LENGTH_RANGE_MM = (1e-6, 1e6)


def _require_finite(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def _require_length(name: str, value: object) -> float:
    """A positive length in mm within ``LENGTH_RANGE_MM``."""
    value = check_positive(f"{name} (mm)", value, "finite number")
    low, high = LENGTH_RANGE_MM
    if not low <= value <= high:
        raise ValueError(
            f"{name} = {value:g} mm is outside [{low:g}, {high:g}] mm: lengths are in mm"
        )
    return value


@dataclass(frozen=True)
class Geometry(ABC):
    """Fields and derived quantities shared by both beam geometries (see module docstring)."""

    image_size: int
    n_angles: int
    n_detectors: int
    pixel_size: float
    detector_spacing: float
    angle_range: float
    angle_offset: float
    kind: str = field(init=False, default="")

    def _assign(self, kind: str, arguments: Mapping[str, object]) -> None:
        """Set the (frozen) fields from the constructor's ``arguments`` (its ``locals()``: every
        field by its name), then validate the ones every geometry shares."""
        for f in fields(self):
            if f.init:
                value = arguments[f.name]
                if f.type == "float" and type(value) is int:  # 2 and 2.0: one cache key
                    value = float(value)
                object.__setattr__(self, f.name, value)
        object.__setattr__(self, "kind", kind)
        self._validate_common()
        object.__setattr__(self, "_cache_key", self._hash())  # compiled code reads it as is

    def _validate_common(self) -> None:
        check_int("image_size", self.image_size)
        check_int("n_angles", self.n_angles)
        check_int("n_detectors", self.n_detectors)
        _require_length("pixel_size", self.pixel_size)
        _require_length("detector_spacing", self.detector_spacing)
        check_positive("angle_range (rad)", self.angle_range, "finite number")
        if self.angle_range > 2 * math.pi + 1e-9:
            raise ValueError(f"angle_range must be at most 2*pi, got {self.angle_range!r}")
        _require_finite("angle_offset (rad)", self.angle_offset)
        if self.image_size < 2:
            raise ValueError(f"image_size must be at least 2 pixels, got {self.image_size}")

    # ---- derived quantities -------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int]:
        return (self.image_size, self.image_size)

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        return (self.n_angles, self.n_detectors)

    @property
    def image_width(self) -> float:
        """Side length of the image square in mm."""
        return self.image_size * self.pixel_size

    @property
    def inscribed_radius(self) -> float:
        """Radius in mm of the disc inscribed in the image square."""
        return self.image_width / 2

    @property
    def circumscribed_radius(self) -> float:
        """Radius in mm of the disc through the image corners."""
        return self.image_width / math.sqrt(2)

    @property
    def detector_width(self) -> float:
        return self.n_detectors * self.detector_spacing

    @property
    def angle_step(self) -> float:
        return self.angle_range / self.n_angles

    def angles(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The projection angles in radians, shape ``(n_angles,)``."""
        k = torch.arange(self.n_angles, dtype=torch.float64)
        return (self.angle_offset + k * self.angle_step).to(dtype)

    def detector_positions(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """Detector pixel centres ``t_k`` in mm along the detector axis."""
        k = torch.arange(self.n_detectors, dtype=torch.float64)
        return ((k - (self.n_detectors - 1) / 2) * self.detector_spacing).to(dtype)

    def rotational_symmetry(self) -> tuple[int, int]:
        """``(m, k)``: the angle set splits into ``m`` blocks (m in {1, 2, 4}) whose rays are
        those of the first block turned by ``k``, ``2k``, ... quarter turns.

        Then the rays at angle index ``i + q * n_angles / m`` are the rays at index ``i``
        rotated by ``q * k * pi/2``, so backends may store the operator for the first
        ``n_angles / m`` angles only and apply it to turned copies of the image (exact: a
        quarter turn permutes the pixels of a centred square grid). ``(1, 0)``: no symmetry.
        """
        for m in (4, 2):
            if self.n_angles % m:
                continue
            quarter_turns = self.angle_step * (self.n_angles // m) / (math.pi / 2)
            k = round(quarter_turns)
            if k in (1, 2) and math.isclose(quarter_turns, k, rel_tol=0, abs_tol=1e-12):
                return m, k
        return 1, 0

    @abstractmethod
    def rays(self, angle_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Ray origins (mm) and unit directions for the given angle indices.

        Returns two float64 tensors of shape ``(len(angle_indices), n_detectors, 2)`` holding
        ``(x, y)``: an origin is a point on its ray (for parallel beam, ``t_k omega``, inside
        the image). The detector covers the image's inscribed circle (validated at
        construction); rays of a wider detector may miss the image.
        """

    def cache_key(self) -> str:
        """A short hash of every field: equal geometries share cached operators."""
        return self._cache_key

    def _hash(self) -> str:
        payload = json.dumps({"kind": self.kind, **asdict(self)}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def _trig(self, angle_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        theta = self.angle_offset + angle_indices.to(torch.float64) * self.angle_step
        return torch.cos(theta), torch.sin(theta)


@dataclass(frozen=True)
class ParallelBeamGeometry(Geometry):
    """Parallel-beam geometry; by default angles over [0, pi) and a detector that spans
    the image's circumscribed circle (``detector_spacing = sqrt(2) * width / n_detectors``).

    Args:
        image_size: pixels per side. n_angles: number of projections.
        n_detectors: detector pixels. pixel_size: mm. detector_spacing: mm (None: default).
        angle_range, angle_offset: radians.
    """

    def __init__(
        self,
        image_size: int = 128,
        n_angles: int = 180,
        n_detectors: int = 183,
        pixel_size: float = 1.0,
        detector_spacing: float | None = None,
        angle_range: float = math.pi,
        angle_offset: float = 0.0,
    ) -> None:
        if detector_spacing is None:
            check_int("n_detectors", n_detectors)
            check_int("image_size", image_size)
            _require_length("pixel_size", pixel_size)
            detector_spacing = 2 * (image_size * pixel_size / math.sqrt(2)) / n_detectors
        self._assign("parallel", locals())
        if self.detector_width / 2 < self.inscribed_radius:
            need = math.ceil(2 * self.inscribed_radius / self.detector_spacing)
            raise ValueError(
                f"the detector ({self.n_detectors} x {self.detector_spacing:g} mm = "
                f"{self.detector_width:g} mm) does not cover the image's inscribed circle "
                f"(diameter {2 * self.inscribed_radius:g} mm): use at least {need} detectors "
                f"or a spacing of at least {2 * self.inscribed_radius / self.n_detectors:g} mm"
            )

    def rays(self, angle_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = self._trig(angle_indices)
        t = self.detector_positions()
        omega = torch.stack([c, s], -1)[:, None, :]  # (A,1,2)
        omega_perp = torch.stack([-s, c], -1)[:, None, :]
        origins = t[None, :, None] * omega
        return origins, omega_perp.expand_as(origins).contiguous()


@dataclass(frozen=True)
class FanBeamGeometry(Geometry):
    """Fan-beam geometry with a flat, equispaced detector (see the module docstring).

    Args:
        image_size: pixels per side. n_angles: projections over ``angle_range`` (default 2 pi).
        n_detectors: detector pixels. pixel_size: mm (default 2 mm: 128 px span 256 mm).
        source_radius: source-to-centre distance in mm. detector_radius: centre-to-detector
            distance in mm. detector_spacing: mm; default: the fan just covers the image's
            circumscribed circle.
    """

    source_radius: float = 500.0
    detector_radius: float = 500.0

    def __init__(
        self,
        image_size: int = 128,
        n_angles: int = 360,
        n_detectors: int = 256,
        pixel_size: float = 2.0,
        source_radius: float = 500.0,
        detector_radius: float = 500.0,
        detector_spacing: float | None = None,
        angle_range: float = 2 * math.pi,
        angle_offset: float = 0.0,
    ) -> None:
        source_radius = _require_length("source_radius", source_radius)
        detector_radius = _require_length("detector_radius", detector_radius)
        check_int("image_size", image_size)
        _require_length("pixel_size", pixel_size)
        circum = image_size * pixel_size / math.sqrt(2)
        for name, radius in (
            ("source_radius", source_radius),
            ("detector_radius", detector_radius),
        ):
            if radius <= circum:
                raise ValueError(
                    f"{name} = {radius:g} mm lies inside the image (its corners are "
                    f"{circum:g} mm from the centre): use {name} > {circum:g} mm or a smaller "
                    "image_size * pixel_size"
                )
        if detector_spacing is None:
            check_int("n_detectors", n_detectors)
            half = (source_radius + detector_radius) * math.tan(math.asin(circum / source_radius))
            detector_spacing = 2 * half / n_detectors
        self._assign("fan", locals())
        # The fan must cover the inscribed circle: R_s sin(gamma_max) >= r.
        gamma_max = math.atan(self.detector_width / 2 / self.source_to_detector)
        covered = self.source_radius * math.sin(gamma_max)
        if covered < self.inscribed_radius * (1 - 1e-9):
            half = self.source_to_detector * math.tan(
                math.asin(self.inscribed_radius / self.source_radius)
            )
            need_n = math.ceil(2 * half / self.detector_spacing)
            raise ValueError(
                f"the fan ({self.n_detectors} detectors x {self.detector_spacing:g} mm) covers a "
                f"circle of radius {covered:g} mm, less than the image's inscribed circle "
                f"({self.inscribed_radius:g} mm): use at least {need_n} detectors, or a "
                f"detector spacing of at least {2 * half / self.n_detectors:g} mm"
            )

    @property
    def source_to_detector(self) -> float:
        """Source-to-detector distance in mm."""
        return self.source_radius + self.detector_radius

    @property
    def magnification(self) -> float:
        return self.source_to_detector / self.source_radius

    def rays(self, angle_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c, s = self._trig(angle_indices)
        t = self.detector_positions()
        omega = torch.stack([c, s], -1)[:, None, :]
        omega_perp = torch.stack([-s, c], -1)[:, None, :]
        source = -self.source_radius * omega_perp  # (A,1,2)
        pixel = self.detector_radius * omega_perp + t[None, :, None] * omega  # (A,D,2)
        d = pixel - source
        d = d / torch.linalg.vector_norm(d, dim=-1, keepdim=True)
        return source.expand_as(d).contiguous(), d


#: ``Geometry.kind`` -> class (what :func:`geometry_from_record` builds).
GEOMETRY_KINDS: dict[str, type[Geometry]] = {
    "fan": FanBeamGeometry,
    "parallel": ParallelBeamGeometry,
}


def geometry_record(geometry: Geometry) -> dict[str, object]:
    """Every field of ``geometry`` and its ``kind``, as plain numbers (what a checkpoint
    stores, and what a geometry YAML file holds)."""
    fields = asdict(geometry)
    fields["kind"] = geometry.kind
    return fields


def geometry_from_record(record: dict[str, object]) -> Geometry:
    """The geometry that :func:`geometry_record` describes: ``kind`` (``fan`` or
    ``parallel``) and the constructor's fields (omitted ones take their defaults, e.g. a
    detector spacing that covers the image). Raises ``ValueError`` naming a bad field."""
    fields = dict(record)
    kind = fields.pop("kind", None)
    if kind not in GEOMETRY_KINDS:
        raise ValueError(
            f"geometry kind {kind!r} is not valid: choose one of {sorted(GEOMETRY_KINDS)}"
        )
    cls = GEOMETRY_KINDS[kind]
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(fields) - set(allowed))
    if unknown:
        raise ValueError(
            f"unknown {kind} geometry field(s) {unknown}: the fields are {allowed} (mm, radians)"
        )
    return cls(**fields)


def geometry_differences(a: Geometry, b: Geometry) -> list[str]:
    """``"field: a != b"`` for every field (and the kind) where ``a`` and ``b`` differ
    (floats compared to 1e-9 relative): empty when they describe the same acquisition."""
    ra, rb = geometry_record(a), geometry_record(b)
    diffs = []
    for key in sorted(set(ra) | set(rb)):
        x, y = ra.get(key), rb.get(key)
        same = (
            math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12)
            if isinstance(x, float) and isinstance(y, (int, float))
            else x == y
        )
        if not same:
            diffs.append(f"{key}: {x!r} != {y!r}")
    return diffs
