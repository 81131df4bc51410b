"""Reconstruct a volume slice by slice: the method (a committed model, a checkpoint, FBP or
TV) on its physics, the simulation of measurements from images, and the batched loop with a
progress bar (on the GPU when there is one)."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from learnct.methods import METHODS, ReconstructionMethod
from learnct.methods.checkpoints import (
    checkpoint_geometry,
    read_checkpoint,
    reading_checkpoints_once,
)
from learnct.methods.pretrained import (
    check_run_geometry,
    checkpoint_method,
    load_pretrained,
    resolve_checkpoint,
)
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PhysicsPreset
from learnct.physics.units import hu_to_image, image_to_hu
from learnct.reconstruct.physics_spec import resolve_physics
from learnct.reconstruct.readers import ImageInput
from learnct.reconstruct.volume import (
    Volume,
    crop_note,
    grid_to_input_indices,
    to_geometry_grid,
)

__all__ = ["CLASSICAL", "Reconstructor", "build_reconstructor", "pick_device"]

#: The methods with nothing to train (``learnct.methods.METHODS``): ``--method``'s choices.
CLASSICAL: dict[str, type[ReconstructionMethod]] = {
    name: cls for name, cls in METHODS.items() if not cls.trainable
}


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``ValueError`` for a device that is not
    valid or not here."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"--device {name!r} is not valid: choose auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device here; use --device cpu (or auto)")
    return device


@dataclass
class Reconstructor:
    """A method ready to run on ``physics`` (its operator is the method's own), on ``device``."""

    method: ReconstructionMethod
    physics: PhysicsPreset
    label: str
    device: torch.device

    @property
    def operator(self) -> RayTransform:
        return self.method.operator

    def provenance(self) -> dict[str, object]:
        """What made the images, for the output files' tags."""
        from learnct import __version__
        from learnct.physics.geometry import geometry_record

        return {
            "method": type(self.method).__name__,
            "model": self.label,
            "physics": self.physics.name,
            "geometry": geometry_record(self.physics.geometry),
            "noise": self.physics.noise,
            "photons": self.physics.photons,
            "mu_per_mm": self.physics.mu,
            "software": f"learnct {__version__}",
        }

    def _batches(self, total: int, batch_size: int, quiet: bool) -> Iterator[slice]:
        from rich.progress import Progress

        with Progress(disable=quiet or total <= 1, transient=False) as progress:
            task = progress.add_task("reconstructing slices", total=total)
            for start in range(0, total, batch_size):
                yield slice(start, min(start + batch_size, total))
                progress.update(task, advance=min(batch_size, total - start))

    def from_sinograms(
        self, sinograms: np.ndarray, batch_size: int = 8, quiet: bool = False
    ) -> Volume:
        """Reconstruct ``(S, A, D)`` line integrals; returns the slices in HU on the
        geometry's grid (``pixel_size`` spacing, positions unknown)."""
        wanted = self.physics.geometry.sinogram_shape
        if tuple(sinograms.shape[1:]) != tuple(wanted):
            raise ValueError(
                f"the sinograms are {tuple(sinograms.shape[1:])} (angles, detectors) but the "
                f"geometry {self.physics.name} measures {tuple(wanted)}: give the geometry "
                "they were measured with (--preset or --geometry-file)"
            )
        out = []
        for part in self._batches(len(sinograms), batch_size, quiet):
            batch = torch.from_numpy(np.ascontiguousarray(sinograms[part]))[:, None]
            out.append(self._run(batch.to(self.device)))
        return self._volume(np.concatenate(out), None)

    def from_images(
        self,
        images: ImageInput,
        batch_size: int = 8,
        seed: int = 0,
        quiet: bool = False,
    ) -> Volume:
        """Simulate this physics' measurements of ``images`` (resampled onto the geometry's
        grid by their pixel spacing; Poisson noise seeded by ``seed`` and the slice index)
        and reconstruct them; returns the slices in HU with the input's positions."""
        geometry, mu = self.physics.geometry, self.physics.mu
        volume = images.volume
        note = crop_note(volume.slices.shape[1:], volume.spacing, geometry)
        if note:
            print(f"note: {note}", file=sys.stderr)
        out = []
        for part in self._batches(len(volume.slices), batch_size, quiet):
            slices = volume.slices[part]
            if images.units == "hu":
                slices = hu_to_image(slices, mu)
            x = torch.stack([to_geometry_grid(s, volume.spacing, geometry) for s in slices])
            x = x.to(self.device)
            generators = [
                torch.Generator(device=self.device).manual_seed(seed * 1_000_003 + k)
                for k in range(part.start, part.stop)
            ]
            with torch.no_grad():
                measured = self.physics.simulate(self.operator(x), generator=generators)
            out.append(self._run(measured))
        affine = None
        if volume.affine is not None and volume.spacing is not None:
            grid = grid_to_input_indices(volume.slices.shape[1:], volume.spacing, geometry)
            affine = volume.affine @ grid
        return self._volume(np.concatenate(out), volume.positions, affine, volume.thickness)

    def _run(self, sinograms: torch.Tensor) -> np.ndarray:
        image = self.method.reconstruct(sinograms)
        return image[:, 0].float().cpu().numpy()

    def _volume(
        self,
        images: np.ndarray,
        positions: list[float] | None,
        affine: np.ndarray | None = None,
        thickness: float | None = None,
    ) -> Volume:
        hu = image_to_hu(images, self.physics.mu).astype(np.float32)
        size = self.physics.geometry.pixel_size
        return Volume(hu, (size, size), positions, affine, thickness)


def build_reconstructor(
    model: str | None,
    method: str | None = None,
    preset: str | None = None,
    geometry_file: str | None = None,
    photons: float | None = None,
    allow_geometry_mismatch: bool = False,
    device: str = "auto",
    backend: str = "auto",
    method_options: dict[str, Any] | None = None,
) -> Reconstructor:
    """The method to run: the committed model or checkpoint ``model`` (on its own geometry;
    another one given by ``preset``/``geometry_file`` is refused with what differs unless
    ``allow_geometry_mismatch``), or the classical ``method`` (``fbp``, ``tv``) on the
    geometry given, with ``method_options`` (its constructor's keywords, e.g. TV's ``lam``)."""
    if (model is None) == (method is None):
        raise ValueError("choose one: --model <name or checkpoint> or --method fbp|tv")
    if model is not None:
        with reading_checkpoints_once():  # read here for its geometry, then loaded
            path = resolve_checkpoint(model)
            checkpoint = read_checkpoint(path)
            trained_for = checkpoint_geometry(checkpoint, path)
            physics = resolve_physics(preset, geometry_file, photons, trained_for)
            cls = checkpoint_method(checkpoint, path)
            differ = check_run_geometry(
                cls,
                trained_for,
                physics.geometry,
                str(model),
                allow_geometry_mismatch,
                physics.name,
                how_own="omit --preset/--geometry-file",
            )
            run_on = physics.geometry if differ else None  # None: its own geometry, as stored
            chosen = load_pretrained(path, backend=backend, geometry=run_on)
        label = str(model)
    else:
        if method not in CLASSICAL:
            raise ValueError(f"--method {method!r} is not valid: choose one of {sorted(CLASSICAL)}")
        if allow_geometry_mismatch:
            raise ValueError(
                "--allow-geometry-mismatch: for a --model trained on another geometry; "
                f"--method {method} runs on the geometry given; drop it"
            )
        physics = resolve_physics(preset, geometry_file, photons, None)
        operator = RayTransform(physics.geometry, backend=backend)
        options = dict(method_options or {})
        if "mu" in inspect.signature(CLASSICAL[method]).parameters:  # TV's weighted data term
            options.setdefault("mu", physics.mu)
        chosen = CLASSICAL[method](operator, **options).eval()
        label = " ".join([method, *(f"{k}={v}" for k, v in (method_options or {}).items())])
    where = pick_device(device)
    return Reconstructor(chosen.to(where), physics, label, where)
