"""Low-dose measurement noise: Poisson photon counts (transmission CT) or additive Gaussian.

Poisson model (Beer-Lambert): a detector pixel behind line integral ``y`` (image units x mm)
receives ``N ~ Poisson(I0 exp(-mu y))`` photons, ``I0`` = ``photons`` per detector pixel in the
blank scan and ``mu`` (1/mm per image unit) converting image values to attenuation. Counts
below ``min_counts`` (zero counts, where -log is undefined) are set to ``min_counts``; the
measurement returned is the post-log line integral ``-log(N / I0) / mu``, in the units of ``y``.

Gaussian model: ``y + sigma * e``, ``e ~ N(0, 1)``, with ``sigma = relative_std * mean|y|``
per sample (the LPD paper's ellipse setup: 5 %).

Per-sample doses: ``photons`` may be a tensor ``(B,)``, one dose per sample, simulated in one
batched call (no per-sample loop; on the CPU, where ``torch.poisson`` draws the elements in
order, the same draws as simulating the samples one after another with the same generator).

Randomness: pass one ``torch.Generator`` for the whole batch, or a sequence of generators, one
per sample, so that fixed validation and test sets are reproducible sample by sample whatever
the batch composition. Generators must live on the sinogram's device.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from learnct.checks import check_positive

__all__ = [
    "MU_WATER",
    "NOISE_MODELS",
    "check_attenuation",
    "check_noise_settings",
    "simulate_low_dose",
    "statistical_weights",
]

NOISE_MODELS = ("poisson", "gaussian")
#: water's attenuation at the presets' energy (1/mm): ``mu`` for images relative to water
#: (water 1, learnct's image units), the default of :func:`simulate_low_dose` and
#: :func:`statistical_weights`
MU_WATER = 0.02


def _draw(
    fn, params: torch.Tensor, generator: torch.Generator | Sequence[torch.Generator] | None
) -> torch.Tensor:
    if generator is None or isinstance(generator, torch.Generator):
        return fn(params, generator)
    gens = list(generator)
    if len(gens) != params.shape[0]:
        raise ValueError(
            f"got {len(gens)} generators for a batch of {params.shape[0]}: pass one per sample"
        )
    return torch.stack([fn(p, g) for p, g in zip(params, gens, strict=True)])


def _check_generators(generator, device: torch.device) -> None:
    if generator is None:
        return
    if isinstance(generator, torch.Generator):
        gens = [generator]
    elif isinstance(generator, Sequence):
        gens = list(generator)
    else:
        raise ValueError(
            "generator must be a torch.Generator or a sequence of them (one per sample), got "
            f"{type(generator).__name__}"
        )
    for g in gens:
        if not isinstance(g, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator, got {type(g).__name__}")
        if g.device.type != device.type:
            raise ValueError(
                f"generator is on {g.device} but the sinogram is on {device}: create it with "
                f"torch.Generator(device={str(device)!r})"
            )


def _photons(photons: float | torch.Tensor | None, sinogram: torch.Tensor):
    """``photons`` ready to broadcast against ``sinogram`` ``(B, ...)``: a checked positive
    finite number, or a tensor of shape ``()`` or ``(B,)`` on the sinogram's device, returned
    as ``(B, 1, ..., 1)`` in its dtype. A tensor's values are not checked here (that would
    read the device, a host synchronisation on a GPU): its maker checks them."""
    if not isinstance(photons, torch.Tensor):
        number = isinstance(photons, (int, float)) and not isinstance(photons, bool)
        if not number or not photons > 0:
            raise ValueError(
                f"photons must be a positive number of photons per pixel, got {photons!r}"
            )
        if not math.isfinite(photons):
            raise ValueError(f"photons must be finite, got {photons!r}")
        return photons
    batch = sinogram.shape[0]
    if not photons.is_floating_point() or photons.shape not in ((), (batch,)):
        raise ValueError(
            f"photons as a tensor must be floating point of shape () or ({batch},) (one dose "
            f"per sample), got {photons.dtype} of shape {tuple(photons.shape)}"
        )
    if photons.device != sinogram.device:
        raise ValueError(
            f"photons is on {photons.device} but the sinogram is on {sinogram.device}: move it"
        )
    return photons.to(sinogram.dtype).reshape(-1, *[1] * (sinogram.dim() - 1))


def simulate_low_dose(
    sinogram: torch.Tensor,
    photons: float | torch.Tensor | None = 1e4,
    *,
    mu: float = MU_WATER,
    noise: str = "poisson",
    relative_std: float = 0.05,
    min_counts: float = 1.0,
    generator: torch.Generator | Sequence[torch.Generator] | None = None,
    check_finite: bool = True,
) -> torch.Tensor:
    """Noisy post-log measurements of the clean line integrals ``sinogram`` ``(B, ...)``.

    Args:
        photons: incident photons per detector pixel ``I0`` (Poisson model): a number, or a
            tensor ``(B,)`` of one dose per sample (one batched draw; its values unchecked).
        mu: attenuation per image unit in 1/mm; the line integral of attenuation is
            ``mu * sinogram``. Default water's 0.02 /mm (:data:`MU_WATER`), for images
            relative to water (water 1: the presets' units); 1.0 for images in 1/mm.
        noise: ``"poisson"`` or ``"gaussian"``.
        relative_std: Gaussian noise std as a fraction of the mean absolute value per sample.
        min_counts: counts below this are clamped to it before the log (documented zero-count
            handling; 1 photon by default, as in Adler and Öktem's human-data setup).
        generator: a generator for the batch, or one per sample.
        check_finite: raise on a NaN or inf in ``sinogram`` (a reduction and a host read;
            ``False`` where the caller has checked its input, e.g. the ray transform did).
    Returns:
        A tensor like ``sinogram``: noisy line integrals in the same units.
    """
    if not isinstance(sinogram, torch.Tensor) or not sinogram.is_floating_point():
        raise ValueError("sinogram must be a floating-point torch.Tensor")
    if sinogram.dim() < 2:
        raise ValueError(f"sinogram must be batched (B, ...), got shape {tuple(sinogram.shape)}")
    check_noise_settings(noise, mu=mu, relative_std=relative_std, min_counts=min_counts)
    if check_finite and not torch.isfinite(sinogram).all():
        raise ValueError("sinogram contains NaN or inf values")
    _check_generators(generator, sinogram.device)
    if noise == "gaussian":
        dims = tuple(range(1, sinogram.dim()))
        sigma = relative_std * sinogram.abs().mean(dim=dims, keepdim=True)

        def normal(p: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
            return torch.randn(p.shape, generator=g, device=p.device, dtype=p.dtype)

        return sinogram + sigma * _draw(normal, sinogram, generator)
    photons = _photons(photons, sinogram)
    expected = photons * torch.exp(-mu * sinogram)
    counts = _draw(lambda p, g: torch.poisson(p, generator=g), expected, generator)
    counts = counts.clamp_min(min_counts)
    return -torch.log(counts / photons) / mu


def check_attenuation(mu: object) -> float:
    """``mu`` if it is a positive attenuation per image unit (1/mm), else ``ValueError``."""
    return check_positive("mu", mu, "attenuation (1/mm, 0.02: water)")


def check_noise_settings(
    noise: object, *, mu: object, relative_std: object, min_counts: object
) -> None:
    """``ValueError`` naming the first invalid setting of a noise model (see
    ``simulate_low_dose``): ``noise`` one of :data:`NOISE_MODELS` (lower case), ``mu`` a
    positive attenuation (1/mm), ``relative_std >= 0``, ``min_counts > 0`` (photons)."""
    if noise not in NOISE_MODELS:
        raise ValueError(f"unknown noise model {noise!r}: choose one of {NOISE_MODELS}")
    check_attenuation(mu)
    number = isinstance(relative_std, (int, float)) and not isinstance(relative_std, bool)
    if not (number and 0 <= relative_std < math.inf):
        raise ValueError(
            f"relative_std must be >= 0 (Gaussian noise std over the mean |sinogram|), got "
            f"{relative_std!r}"
        )
    check_positive("min_counts", min_counts, "number of photons (zero counts are clamped to it)")


def statistical_weights(sinogram: torch.Tensor, mu: float = MU_WATER) -> torch.Tensor:
    """Per-ray weights of post-log Poisson data ``y`` ``(B, ...)``: ``w = exp(-mu y)``
    normalised to mean 1 per sample.

    ``exp(-mu y) = N / I0`` (counts over blank-scan photons), and the variance of the post-log
    datum is about ``1 / (mu^2 N)``, so ``w`` is its inverse variance up to a per-sample factor
    (the weights of a weighted least-squares data term ``||A f - y||_W^2``). Needs neither
    ``I0`` nor the counts: the measurement itself gives them. ``mu``: attenuation per image
    unit in 1/mm (0.02: images relative to water).
    """
    w = torch.exp(-mu * sinogram)
    return w / w.flatten(1).mean(1).view(-1, *([1] * (w.dim() - 1)))
