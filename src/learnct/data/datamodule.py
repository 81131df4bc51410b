"""``CTDataModule``: ground-truth images from one source, measurements simulated on device.

Data flow::

    Dataset (CPU, DataLoader workers)            {"image": (1,N,N), "index"} plus
                                                 "noise_seed" (val/test) or "photons"
                                                 (training with train_photons_range)
      -> default collate, transfer to the device
      -> on_after_batch_transfer (training device) CTBatch(image, sinogram, clean_sinogram,
                                                   index), see learnct.data.batch

In ``on_after_batch_transfer`` the injected ``RayTransform`` computes the clean sinogram and
the preset's noise model (Poisson counts with ``photons`` per detector pixel, or Gaussian for
``parallel_ellipses``) draws the measurement, with generators on the batch's device:

- validation and test: one generator per SAMPLE, seeded by
  ``derive_seed(seed, "noise", split, source, index)``: the measurement of a sample depends
  only on the seed, the split, the source and its index (not on the batch size, the batch
  composition, the number of workers, the method or the run), so every method sees exactly
  the same test data. CPU and CUDA generators draw different numbers, so by default
  (``eval_noise_on_cpu=True``) this noise is drawn on the CPU from the clean sinogram and
  moved back: the same draws whether a method is evaluated on a CPU or a GPU. Where the
  two devices' line integrals differ in the last bits (another backend sums in another
  order), ``torch.poisson``'s rejection sampler can take another path, and the rest of that
  sample's draws differ: another draw of the same distribution (an H200 run, 2026-11-26:
  94% of a test batch's values identical, FBP's test PSNR equal to 0.01 dB);
- training: one generator per BATCH, seeded by ``derive_seed(seed, "train-noise", k)`` where
  ``k`` counts the training batches simulated so far (saved in the DataModule's
  ``state_dict``, so a resumed run continues the sequence): fresh noise every step,
  reproducible. With ``train_photons_range`` each training sample is simulated at its own
  dose, log-uniform in that range and fixed by its stream index
  (``derive_seed(seed, "train-dose", index)``, :func:`train_dose`, computed in the loader
  and carried as the batch's ``photons``); one batched Poisson draw simulates all the doses
  (on the CPU the same draws as one sample after another); validation and test keep the
  preset's. A training batch is simulated without reading its device (no host
  synchronisation per step on a GPU): seeds and doses come from the loader, the noise
  counter is counted, and the stream position is read from the last batch's indices only
  when the ``state_dict`` is asked for.

A resumed run continues both streams: the DataModule's ``state_dict`` (saved in Lightning
checkpoints) holds the noise counter and the next index of the training stream, and the first
training epoch after ``load_state_dict`` starts at that index instead of the epoch's start
(the training loader, a :class:`StreamLoader`, tells Lightning that it resumes).

Training images are an infinite stream; the sampler (:class:`EpochStreamSampler`) yields
``epoch * train_size + i`` (Lightning calls its ``set_epoch``; outside Lightning every new
pass over the loader advances the epoch) and ``CTBatch.index`` is the stream index. For
``ellipses`` and ``ctlike`` each index is a fresh phantom; finite sources (``lodopab``,
``folder``) show their ``train_size`` slices in a new order every epoch (``_ShuffledEpochs``:
a permutation per epoch from ``derive_seed(seed, "shuffle", epoch)``), so a resumed run
continues the interrupted epoch's order too. Data parallel (``trainer=ddp``): each process
takes every ``world_size``-th stream index, and training batch ``k`` of process ``rank``
draws its noise from ``derive_seed(seed, "train-noise", k * world_size + rank)`` (one process:
``k``, as above).
"""

from __future__ import annotations

import dataclasses
import math
import random
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from learnct.checks import check_int
from learnct.config_names import source_names
from learnct.data.batch import CTBatch
from learnct.data.sources import (
    DEFAULT_SIZES,
    SPLITS,
    EllipsesDataset,
    derive_seed,
    make_dataset,
)
from learnct.physics.operator import RayTransform
from learnct.physics.presets import PRESETS, PhysicsPreset

__all__ = [
    "DEFAULT_SIZES",
    "CTDataModule",
    "EpochStreamSampler",
    "StreamLoader",
    "drop_stream_loader_state",
    "train_dose",
]


class EpochStreamSampler(DistributedSampler):
    """Yields ``epoch * length + i`` for ``i < length``: a fresh slice of an infinite stream.

    ``set_epoch(e)`` (called by Lightning before each training epoch) selects the epoch; each
    ``iter()`` without it moves on to the next epoch. The epoch is read when iteration starts.
    ``resume_from``: a stream index already reached (a resumed run); iteration starts in the
    epoch that contains it, there (also when a loader's workers ask for indices before
    Lightning's ``set_epoch``).

    Data parallel (``rank`` of ``world_size`` processes): each process takes every
    ``world_size``-th index from ``rank`` on, ``length // world_size`` an epoch (the same
    number of batches on every process; the epoch's last ``length % world_size`` indices are
    left out). A ``DistributedSampler`` by type only, so that Lightning shards nothing again.
    """

    def __init__(
        self, length: int, resume_from: int = 0, rank: int = 0, world_size: int = 1
    ) -> None:  # not DistributedSampler's: it needs a process group and shuffles
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not one of {world_size} processes")
        self.length, self.resume_from = length, resume_from
        self.rank, self.num_replicas = rank, world_size
        epoch, offset = divmod(resume_from, length) if length else (0, 0)
        if offset >= length // world_size * world_size:  # its epoch's shares are all taken
            epoch += 1
        self._next_epoch = epoch

    def set_epoch(self, epoch: int) -> None:
        self._next_epoch = int(epoch)

    def __len__(self) -> int:
        return self.length // self.num_replicas

    def __iter__(self) -> Iterator[int]:
        epoch, self._next_epoch = self._next_epoch, self._next_epoch + 1
        start = epoch * self.length
        first = max(start, self.resume_from)
        count = (start + self.length - first) // self.num_replicas
        return iter(range(first + self.rank, first + count * self.num_replicas, self.num_replicas))


class _ShuffledEpochs(Dataset):
    """A finite training set (``lodopab``, ``folder``) as an infinite stream: stream index
    ``k = e * n + i`` is sample ``perm_e[i]``, ``perm_e`` a permutation of the ``n`` samples
    from ``derive_seed(seed, "shuffle", e)``. A new order every epoch, fixed by the seed, so a
    resumed run continues the interrupted epoch's order, and a dose per stream index
    (:func:`train_dose`) is a new dose each epoch. Samples carry their stream ``index``."""

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset, self.seed = dataset, seed
        self._order: tuple[int, list[int]] = (-1, [])

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        epoch, position = divmod(index, len(self))
        if self._order[0] != epoch:
            gen = torch.Generator().manual_seed(derive_seed(self.seed, "shuffle", epoch))
            self._order = (epoch, torch.randperm(len(self), generator=gen).tolist())
        return {**self.dataset[self._order[1][position]], "index": index}


class StreamLoader(DataLoader):
    """The training loader (of every source: each is a stream, see the module docstring): it
    resumes.

    The stream's position (its next index and the noise counter) is the DataModule's
    ``state_dict``, which Lightning saves with every checkpoint and restores before it asks
    for this loader, whose sampler then starts there. This loader's own state is therefore
    empty; having ``state_dict``/``load_state_dict`` is what tells Lightning that it resumes
    (without them it warns at every mid-epoch resume, a sitting's start among them, that the
    loader "is not resumable").
    """

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Nothing to restore: the DataModule's state holds the stream's position."""


def drop_stream_loader_state(checkpoint: dict[str, Any]) -> None:
    """Remove from a Lightning ``checkpoint`` the empty states it saved for
    :class:`StreamLoader` s (``loops.fit_loop.state_dict.combined_loader``), in place: Lightning
    refuses to load saved loader states into a run whose loaders have none (an older learnct's
    finite sources' plain loaders), and these hold nothing to restore."""
    fit_loop = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
    states = fit_loop.get("combined_loader")
    if states is not None and all(state == {} for state in states):
        del fit_loop["combined_loader"]


def train_dose(seed: int, index: int, photons_range: tuple[float, float]) -> float:
    """The dose (photons per detector pixel) of training stream ``index``: log-uniform in
    ``photons_range = (low, high)``, from ``derive_seed(seed, "train-dose", index)``."""
    low, high = photons_range
    gen = torch.Generator().manual_seed(derive_seed(seed, "train-dose", index))
    u = float(torch.rand(1, generator=gen, dtype=torch.float64))
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))


class _Tagged(Dataset):
    """Adds what the noise of a sample needs, computed here on the CPU (in the loader, not per
    step on the device): ``noise_seed`` (its generator's seed) to validation and test samples;
    ``photons`` (its dose, :func:`train_dose`) to training samples with ``photons_range``.
    Training samples carry no ``noise_seed``: their noise comes from one generator per batch.
    """

    def __init__(
        self,
        dataset: Dataset,
        split: str,
        source: str,
        seed: int,
        photons_range: tuple[float, float] | None = None,
    ) -> None:
        self.dataset, self.split, self.source, self.seed = dataset, split, source, seed
        self.photons_range = photons_range

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> dict[str, Any]:
        sample = dict(self.dataset[index])
        if self.split != "train":
            sample["noise_seed"] = derive_seed(self.seed, "noise", self.split, self.source, index)
        elif self.photons_range is not None:
            sample["photons"] = train_dose(self.seed, int(sample["index"]), self.photons_range)
        return sample


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy and ``random`` in each worker from its torch seed (itself derived from the
    DataLoader's seeded generator). Samples use their own generators; this is for safety."""
    s = torch.initial_seed() % 2**32
    np.random.seed(s)  # noqa: NPY002 (the global legacy RNG is what third-party code uses)
    random.seed(s)


def _physics_and_operator(
    physics: PhysicsPreset | str, photons: float | None, operator: RayTransform | None
) -> tuple[PhysicsPreset, RayTransform]:
    """The DataModule's preset (a name is looked up; ``photons``, when given, replaces its
    dose) and its ray transform (built from the preset's geometry, or ``operator`` checked to
    have that geometry)."""
    if isinstance(physics, str):
        if physics not in PRESETS:
            raise ValueError(f"unknown physics preset {physics!r}: choose one of {sorted(PRESETS)}")
        physics = PRESETS[physics]()
    if not isinstance(physics, PhysicsPreset):
        raise ValueError(
            f"physics must be a PhysicsPreset or a preset name, got {type(physics).__name__}"
        )
    if photons is not None:  # the preset checks it
        physics = dataclasses.replace(physics, photons=photons)
    if operator is None:
        return physics, RayTransform(physics.geometry)
    if not isinstance(operator, RayTransform):
        raise ValueError(f"operator must be a RayTransform, got {type(operator).__name__}")
    if operator.geometry != physics.geometry:
        raise ValueError(
            f"the operator's geometry {operator.geometry} differs from the physics "
            f"preset's {physics.geometry}: build both from the same geometry"
        )
    return physics, operator


def _photons_range(
    physics: PhysicsPreset, value: Sequence[float] | None
) -> tuple[float, float] | None:
    """``train_photons_range`` checked: two doses ``low <= high`` of a Poisson preset (each
    checked by the preset itself)."""
    if value is None:
        return None
    if physics.noise != "poisson":
        raise ValueError(
            f"train_photons_range only applies to Poisson presets; {physics.name!r} uses "
            f"{physics.noise} noise"
        )
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(
            f"train_photons_range={value!r} is not valid: give [low, high] photons per "
            "detector pixel, e.g. [1e3, 1e5]"
        ) from None
    for dose in (low, high):
        dataclasses.replace(physics, photons=dose)  # the preset's own check of a dose
    if low > high:
        raise ValueError(f"train_photons_range={value!r} is not valid: low > high")
    return low, high


class CTDataModule(L.LightningDataModule):
    """Images from ``source`` and low-dose measurements simulated on the training device.

    Args:
        physics: a :class:`~learnct.physics.presets.PhysicsPreset` or a preset name from
            ``PRESETS`` (geometry + noise model).
        operator: the run's ``RayTransform`` (built once by the caller and shared with the
            method); ``None`` builds ``RayTransform(physics.geometry)``. Its geometry must
            equal the preset's.
        source: training source, one of ``SOURCES``; ``val_source`` / ``test_source``: a
            source or a list of sources (default: ``source``); several give several
            dataloaders (e.g. ``test_source=["ellipses", "shepp_logan"]``).
        train_size, val_size, test_size: samples per split; ``None``: all slices for file
            sources, ``DEFAULT_SIZES`` for ellipses and CT-like phantoms, 1 for Shepp-Logan;
            ``train_size`` is the epoch length of an infinite training stream.
        batch_size: training batch size; ``eval_batch_size`` (default ``batch_size``) for
            validation and test (measurements do not depend on it).
        num_workers: DataLoader worker processes (0: load in the main process).
        persistent_workers: keep workers between epochs (default: when ``num_workers > 0``).
        seed: the base seed of phantoms, noise and shuffling.
        photons: overrides the preset's photons per detector pixel (Poisson presets only).
        train_photons_range: ``[low, high]`` photons per detector pixel: each TRAINING sample
            is simulated at its own dose, log-uniform in that range (drawn from
            ``derive_seed(seed, "train-dose", index)``: fixed per stream index), so a model
            also sees photon-starved rays; validation and test keep the preset's dose.
            ``None``: every sample at the preset's dose.
        supersample, clip_min: ellipse rasterisation (see ``EllipsesDataset``).
        lodopab_root: folder of the LoDoPaB-CT HDF5 files; folder_root: folder of slices.
        use_official_observations: for ``lodopab`` splits, use the official observations
            instead of simulated noise (EXPERIMENTAL, see ``LoDoPaBDataset``).
        pin_memory: DataLoader ``pin_memory``; ``None``: when the Trainer runs on CUDA (page-
            locked batches copy to the GPU asynchronously; a copy from pageable memory may
            wait for the GPU's queued work).
        eval_noise_on_cpu: draw validation/test noise on the CPU (device-independent test
            data; costs a host round trip of the sinogram per evaluation batch on a GPU).
        phantoms_on_device: training ``ellipses`` phantoms rasterised per batch on the
            training device (the loaders carry only each sample's ellipse parameters, drawn
            on the CPU from the sample's seed as before): the same images, to float rounding.
    """

    def __init__(
        self,
        physics: PhysicsPreset | str = "fan_lowdose",
        operator: RayTransform | None = None,
        source: str = "ellipses",
        val_source: str | Sequence[str] | None = None,
        test_source: str | Sequence[str] | None = None,
        train_size: int | None = None,
        val_size: int | None = None,
        test_size: int | None = None,
        batch_size: int = 8,
        eval_batch_size: int | None = None,
        num_workers: int = 0,
        persistent_workers: bool | None = None,
        seed: int = 0,
        photons: float | None = None,
        train_photons_range: Sequence[float] | None = None,
        supersample: int = 1,
        clip_min: float | None = 0.0,
        lodopab_root: str | Path = "data/lodopab",
        folder_root: str | Path | None = None,
        folder_fit: str = "spacing",
        use_official_observations: bool = False,
        pin_memory: bool | None = None,
        eval_noise_on_cpu: bool = True,
        phantoms_on_device: bool = False,
    ) -> None:
        super().__init__()
        # paths as text in the hyper-parameters: a checkpoint holding a Path object would not
        # load weights-only (how every learnct checkpoint is read)
        lodopab_root = str(lodopab_root)
        folder_root = None if folder_root is None else str(folder_root)
        self.save_hyperparameters(ignore=["operator", "physics"])
        physics, operator = _physics_and_operator(physics, photons, operator)
        self.physics = physics
        self.train_photons_range = _photons_range(physics, train_photons_range)
        self.operator = operator
        self.geometry = physics.geometry
        self.sources = {
            "train": source_names(source, "source"),
            "val": source_names(source if val_source is None else val_source, "val_source"),
            "test": source_names(source if test_source is None else test_source, "test_source"),
        }
        if len(self.sources["train"]) != 1:
            raise ValueError("source (training) must be a single source name")
        self.sizes = {"train": train_size, "val": val_size, "test": test_size}
        optional = {f"{split}_size": size for split, size in self.sizes.items()}
        optional.update(batch_size=batch_size, eval_batch_size=eval_batch_size)
        for name, value in optional.items():
            if value is not None:  # None: the default
                check_int(name, value)
        check_int("num_workers", num_workers, 0)
        check_int("seed", seed, 0)
        if use_official_observations:
            if "lodopab" not in sum(self.sources.values(), ()):
                raise ValueError("use_official_observations needs the lodopab source")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.persistent_workers = (
            num_workers > 0 if persistent_workers is None else bool(persistent_workers)
        )
        self.seed = seed
        self.supersample = supersample
        self.clip_min = clip_min
        self.lodopab_root = Path(lodopab_root)
        self.folder_root = None if folder_root is None else Path(folder_root)
        self.folder_fit = folder_fit
        self.use_official_observations = bool(use_official_observations)
        self.pin_memory = pin_memory
        self.eval_noise_on_cpu = bool(eval_noise_on_cpu)
        if phantoms_on_device and self.sources["train"] != ("ellipses",):
            raise ValueError(
                "phantoms_on_device rasterises ellipse phantoms: it needs source=ellipses, "
                f"got {list(self.sources['train'])} (set phantoms_on_device=false)"
            )
        self.phantoms_on_device = bool(phantoms_on_device)
        self._phantoms: EllipsesDataset | None = None  # rasterises the training batches
        self.datasets: dict[str, list[Dataset]] = {}
        self._rank, self._world_size = 0, 1  # this process in the training run's processes
        self.train_noise_batches = 0
        self._last_train_index: torch.Tensor | None = None  # see train_stream_next
        self.train_stream_next = 0
        self._resume_stream_from = 0

    # ---- datasets ---------------------------------------------------------------------------
    def build_dataset(self, split: str, source: str) -> Dataset:
        """The tagged dataset of one split and source (what the split's DataLoader reads)."""
        dataset = make_dataset(
            source,
            split,
            image_size=self.geometry.image_size,
            size=self.sizes[split],
            seed=self.seed,
            supersample=self.supersample,
            clip_min=self.clip_min,
            lodopab_root=self.lodopab_root,
            folder_root=self.folder_root,
            observations=self.use_official_observations and source == "lodopab",
            sinogram_shape=self.geometry.sinogram_shape,
            mu_unit=self.physics.mu,
            pixel_size=self.geometry.pixel_size,
            folder_fit=self.folder_fit,
        )
        if split == "train" and not getattr(dataset, "infinite_stream", False):
            dataset = _ShuffledEpochs(dataset, self.seed)
        if self.phantoms_on_device and split == "train":
            dataset = self._phantoms = dataset.with_ellipse_sets()
        return _Tagged(dataset, split, source, self.seed, self.train_photons_range)

    def setup(self, stage: str | None = None) -> None:
        """Build (and, for file sources, validate) the datasets the stage needs."""
        splits = {
            "fit": ("train", "val"),
            "validate": ("val",),
            "test": ("test",),
            "predict": ("test",),
            None: SPLITS,
        }.get(stage)
        if splits is None:
            raise ValueError(f"unknown stage {stage!r}")
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = [self.build_dataset(split, s) for s in self.sources[split]]

    def _datasets(self, split: str) -> list[Dataset]:
        if split not in self.datasets:
            self.setup({"train": "fit", "val": "validate", "test": "test"}[split])
        return self.datasets[split]

    def _pin_memory(self) -> bool:
        """``pin_memory``, or (``None``) whether the attached Trainer trains on CUDA."""
        if self.pin_memory is not None:
            return bool(self.pin_memory)
        trainer = self.trainer
        return trainer is not None and trainer.strategy.root_device.type == "cuda"

    def _loader(
        self,
        dataset: Dataset,
        batch_size: int,
        sampler: Sampler | None,
        loader_class: type[DataLoader] = DataLoader,
    ) -> DataLoader:
        return loader_class(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            shuffle=False,
            num_workers=self.num_workers,
            persistent_workers=self.persistent_workers and self.num_workers > 0,
            pin_memory=self._pin_memory(),
            worker_init_fn=_seed_worker,
            generator=torch.Generator().manual_seed(derive_seed(self.seed, "loader")),
        )

    def train_dataloader(self) -> DataLoader:
        (dataset,) = self._datasets("train")
        self._rank, self._world_size = self._process()
        if len(dataset) < self._world_size:
            raise ValueError(
                f"train_size={len(dataset)} is less than the {self._world_size} training "
                "processes: each needs at least one sample an epoch"
            )
        start, self._resume_stream_from = self._resume_stream_from, 0
        sampler = EpochStreamSampler(len(dataset), start, self._rank, self._world_size)
        return self._loader(dataset, self.batch_size, sampler, StreamLoader)

    def _process(self) -> tuple[int, int]:
        """``(rank, world_size)`` of this process in the attached Trainer's run (``(0, 1)``
        without one)."""
        trainer = self.trainer
        return (0, 1) if trainer is None else (trainer.global_rank, trainer.world_size)

    def _eval_loaders(self, split: str) -> DataLoader | list[DataLoader]:
        loaders = [self._loader(d, self.eval_batch_size, None) for d in self._datasets(split)]
        return loaders[0] if len(loaders) == 1 else loaders

    def val_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._eval_loaders("val")

    def test_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._eval_loaders("test")

    def predict_dataloader(self) -> DataLoader | list[DataLoader]:
        return self._eval_loaders("test")

    # ---- simulation on the device -------------------------------------------------------------
    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int = 0) -> CTBatch:
        if isinstance(batch, CTBatch):
            return batch
        return self.simulate(batch)

    @torch.no_grad()
    def simulate(self, batch: Mapping[str, Any]) -> CTBatch:
        """Clean images (a collated dict on any device) -> :class:`CTBatch` on that device.

        A training batch (no ``noise_seed``) reads nothing from its device: no host
        synchronisation on a GPU (the ray transform's NaN check aside, off with
        ``RayTransform(check_finite=False)``)."""
        if "ellipses" in batch and "image" not in batch and self._phantoms is not None:
            batch = {**batch, "image": self._phantoms.images(batch["ellipses"])}
        try:
            image, index = batch["image"].to(torch.float32), batch["index"]
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(
                "expected a collated sample dict with 'image' and 'index' (from CTDataModule's "
                f"loaders), got {type(batch).__name__}"
            ) from err
        index = torch.as_tensor(index, device=image.device).to(torch.int64).reshape(-1)
        clean = self.operator(image)
        training = "noise_seed" not in batch
        if "observation" in batch:
            sinogram = self._observation(batch["observation"], clean)
        elif not training:
            sinogram = self._eval_noise(clean, batch["noise_seed"])
        else:
            sinogram = self._train_noise(clean, batch.get("photons"))
        if training:
            self._last_train_index = index
        return CTBatch(image=image, sinogram=sinogram, clean_sinogram=clean, index=index)

    @staticmethod
    def _observation(observation: torch.Tensor, clean: torch.Tensor) -> torch.Tensor:
        """LoDoPaB's official measurements, checked against the operator's sinograms."""
        sinogram = observation.to(device=clean.device, dtype=clean.dtype)
        if sinogram.shape != clean.shape:
            raise ValueError(
                f"official observations {tuple(sinogram.shape)} do not match the "
                f"operator's sinograms {tuple(clean.shape)}"
            )
        return sinogram

    def _eval_noise(self, clean: torch.Tensor, seeds: Any) -> torch.Tensor:
        """Validation/test noise: one generator per sample, seeded by its ``noise_seed``
        (read here: Python ints), on the CPU if ``eval_noise_on_cpu``."""
        noise_device = torch.device("cpu") if self.eval_noise_on_cpu else clean.device
        gens = [
            torch.Generator(device=noise_device).manual_seed(s)
            for s in torch.as_tensor(seeds).tolist()
        ]
        return self.physics.simulate(clean.to(noise_device), gens).to(clean.device)

    def _train_noise(self, clean: torch.Tensor, photons: torch.Tensor | None) -> torch.Tensor:
        """Training noise: one generator per batch (``train_noise_batches`` counts them), at
        the samples' own doses ``photons`` (B,) with ``train_photons_range``, in one call."""
        if self.train_photons_range is not None and photons is None:
            raise ValueError(
                "train_photons_range is set but the training batch has no 'photons' (the "
                "per-sample doses): batch the samples of CTDataModule's train_dataloader"
            )
        if photons is not None:
            photons = photons.to(device=clean.device, dtype=clean.dtype)
        batch = self.train_noise_batches * self._world_size + self._rank  # its place in the run
        gen = torch.Generator(device=clean.device)
        gen.manual_seed(derive_seed(self.seed, "train-noise", batch))
        self.train_noise_batches += 1
        check = self.operator.check_finite  # the operator checked the images already
        return self.physics.simulate(clean, gen, photons=photons, check_finite=check)

    def train_photons(self, index: Sequence[int] | torch.Tensor) -> list[float]:
        """The dose (photons per detector pixel) of each training stream ``index`` (on the
        CPU): :func:`train_dose`, what the training loader's samples carry as ``photons``."""
        return [
            train_dose(self.seed, int(i), self.train_photons_range)
            for i in torch.as_tensor(index).reshape(-1).tolist()
        ]

    @property
    def train_stream_next(self) -> int:
        """The next training-stream index (after the last simulated training batch), read from
        that batch's indices here, when asked (a checkpoint), not once per step."""
        if self._last_train_index is not None:
            # data parallel: the run's last batch ends with rank world_size - 1's index
            last = int(self._last_train_index.max()) - self._rank + self._world_size - 1
            self._train_stream_next = last + 1
            self._last_train_index = None
        return self._train_stream_next

    @train_stream_next.setter
    def train_stream_next(self, value: int) -> None:
        self._train_stream_next, self._last_train_index = int(value), None

    # ---- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "train_noise_batches": self.train_noise_batches,
            "train_stream_next": self.train_stream_next,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.train_noise_batches = int(state_dict.get("train_noise_batches", 0))
        self.train_stream_next = int(state_dict.get("train_stream_next", 0))
        self._resume_stream_from = self.train_stream_next
