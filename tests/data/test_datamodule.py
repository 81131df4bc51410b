"""Tests for CTDataModule: determinism, the training stream, noise, devices, bad input."""

from __future__ import annotations

import dataclasses
import math

import h5py
import lightning as L
import numpy as np
import pytest
import torch
from torch._subclasses.fake_tensor import DataDependentOutputException, FakeTensor, FakeTensorMode

from learnct.data import CTBatch, CTDataModule, DataError, derive_seed
from learnct.data.datamodule import train_dose
from learnct.evaluation import per_image_psnr
from learnct.physics import (
    FanBeamGeometry,
    ParallelBeamGeometry,
    PhysicsPreset,
    RayTransform,
    fbp,
)
from learnct.physics.presets import MU_MAX_LODOPAB as MU_MAX

GEOMETRY = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=48, pixel_size=8.0)
PRESET = PhysicsPreset("small_fan", GEOMETRY, photons=1e4)
OPERATOR = RayTransform(GEOMETRY)


def make_dm(**kwargs) -> CTDataModule:
    options = dict(
        physics=PRESET,
        operator=OPERATOR,
        train_size=8,
        val_size=6,
        test_size=5,
        batch_size=4,
        seed=11,
    )
    options.update(kwargs)
    return CTDataModule(**options)


def collect(dm: CTDataModule, loader) -> list[CTBatch]:
    return [dm.on_after_batch_transfer(batch, 0) for batch in loader]


def cat(batches: list[CTBatch], field: str) -> torch.Tensor:
    return torch.cat([getattr(b, field) for b in batches])


# ---- the batch ---------------------------------------------------------------------------------
def test_batch_fields_shapes_and_device():
    dm = make_dm()
    dm.setup("test")
    (batch,) = collect(dm, dm.test_dataloader())[:1]
    assert isinstance(batch, CTBatch) and batch.batch_size == 4
    assert batch.image.shape == (4, 1, 32, 32) and batch.image.dtype == torch.float32
    assert batch.sinogram.shape == (4, 1, 40, 48) == batch.clean_sinogram.shape
    assert batch.index.dtype == torch.int64 and batch.index.tolist() == [0, 1, 2, 3]
    torch.testing.assert_close(batch.clean_sinogram, OPERATOR(batch.image))
    assert not torch.equal(batch.sinogram, batch.clean_sinogram)
    assert all(t.device == batch.image.device for t in vars(batch).values())
    moved = batch.to("meta")
    assert all(t.device.type == "meta" for t in vars(moved).values())
    assert dm.on_after_batch_transfer(batch, 0) is batch  # already simulated


@pytest.mark.gpu
def test_simulation_runs_on_the_batch_device():
    dm = make_dm()
    dm.setup("test")
    raw = next(iter(dm.test_dataloader()))
    gpu = dm.on_after_batch_transfer({k: v.cuda() for k, v in raw.items()}, 0)
    cpu = dm.on_after_batch_transfer(raw, 0)
    assert all(t.device.type == "cuda" for t in vars(gpu).values())
    torch.testing.assert_close(gpu.clean_sinogram.cpu(), cpu.clean_sinogram, rtol=1e-4, atol=1e-4)
    # Test noise is drawn on the CPU with each sample's seed: the same draws on either device,
    # except where torch.poisson's rejection sampler takes another path because a line integral
    # differs in its last bits (triton vs sparse sums), after which that sample's draws differ.
    # On an H200 (2026-11-26) 94% of a test batch's entries were identical.
    same = torch.isclose(gpu.sinogram.cpu(), cpu.sinogram, rtol=1e-4, atol=1e-4)
    assert same.float().mean() > 0.5
    # ... and what a reconstruction sees is the same to well under 0.1 dB
    truth = cpu.image
    psnr = [
        per_image_psnr(fbp(s, GEOMETRY), truth).mean().item()
        for s in (gpu.sinogram.cpu(), cpu.sinogram)
    ]
    assert psnr[0] == pytest.approx(psnr[1], abs=0.1)
    on_device = make_dm(eval_noise_on_cpu=False)
    on_device.setup("test")
    gpu_drawn = on_device.on_after_batch_transfer({k: v.cuda() for k, v in raw.items()}, 0)
    assert gpu_drawn.sinogram.device.type == "cuda"
    # noise drawn by a CUDA generator: other counts almost everywhere (one-photon steps are
    # far above the tolerance), so the CPU draws above are not a coincidence
    other = torch.isclose(gpu_drawn.sinogram.cpu(), cpu.sinogram, rtol=1e-4, atol=1e-4)
    assert other.float().mean() < 0.1


# ---- determinism ---------------------------------------------------------------------------------
def test_val_and_test_sets_identical_across_instances_batch_sizes_and_workers():
    reference = make_dm()
    reference.setup()
    other = make_dm(eval_batch_size=3)  # another instance, another batch size
    other.setup()
    workers = make_dm(num_workers=2, persistent_workers=False)
    workers.setup()
    for split in ("val", "test"):
        ref = collect(reference, getattr(reference, f"{split}_dataloader")())
        for dm in (other, workers):
            got = collect(dm, getattr(dm, f"{split}_dataloader")())
            for field in ("image", "sinogram", "index"):
                assert torch.equal(cat(ref, field), cat(got, field)), (split, field)
        # A second pass over the same loader repeats the set exactly.
        again = collect(reference, getattr(reference, f"{split}_dataloader")())
        assert torch.equal(cat(ref, "sinogram"), cat(again, "sinogram"))
    val = collect(reference, reference.val_dataloader())
    test = collect(reference, reference.test_dataloader())
    assert not torch.equal(cat(val, "image")[:5], cat(test, "image"))
    seeded = make_dm(seed=12)
    seeded.setup("test")
    assert not torch.equal(
        cat(test, "image"), cat(collect(seeded, seeded.test_dataloader()), "image")
    )


def test_eval_noise_depends_only_on_sample_index():
    dm = make_dm(test_source=["ellipses", "shepp_logan"], test_size=4)
    dm.setup("test")
    ellipses_loader, shepp_loader = dm.test_dataloader()
    shepp = collect(dm, shepp_loader)
    image = cat(shepp, "image")
    assert torch.equal(image[0], image[3])  # the same phantom ...
    sino = cat(shepp, "sinogram")
    assert not torch.equal(sino[0], sino[1])  # ... with a new noise realisation per index
    raw = next(iter(ellipses_loader))
    expected_seed = derive_seed(11, "noise", "test", "ellipses", 2)
    assert int(raw["noise_seed"][2]) == expected_seed
    # Recompute sample 2's measurement alone with its documented generator.
    clean = OPERATOR(raw["image"][2:3])
    alone = PRESET.simulate(clean, [torch.Generator().manual_seed(expected_seed)])
    torch.testing.assert_close(dm.on_after_batch_transfer(raw, 0).sinogram[2:3], alone)


# ---- training stream ---------------------------------------------------------------------------
def test_training_stream_fresh_per_epoch_and_reproducible():
    dm = make_dm()
    dm.setup("fit")
    loader = dm.train_dataloader()
    epoch0 = collect(dm, loader)
    epoch1 = collect(dm, loader)  # a new pass = the next epoch
    assert cat(epoch0, "index").tolist() == list(range(8))
    assert cat(epoch1, "index").tolist() == list(range(8, 16))
    assert not torch.equal(cat(epoch0, "image"), cat(epoch1, "image"))
    # Training noise is fresh every step: simulate the same images twice.
    raw = next(iter(loader))
    first, second = dm.on_after_batch_transfer(raw, 0), dm.on_after_batch_transfer(raw, 0)
    assert not torch.equal(first.sinogram, second.sinogram)
    # Reproducible: a new instance replays epoch 1 (set_epoch) and, from its state, the noise.
    twin = make_dm(num_workers=2, persistent_workers=False)
    twin.setup("fit")
    twin_loader = twin.train_dataloader()
    twin_loader.sampler.set_epoch(1)
    twin.load_state_dict({"train_noise_batches": 2})  # epoch 0 consumed 2 batches
    replay = collect(twin, twin_loader)
    assert torch.equal(cat(replay, "image"), cat(epoch1, "image"))
    assert torch.equal(cat(replay, "sinogram"), cat(epoch1, "sinogram"))
    assert dm.state_dict()["train_noise_batches"] == 6


class _Recorder(L.LightningModule):
    """A do-nothing method that records what the DataModule hands to the steps."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(()))
        self.seen: dict[str, list[CTBatch]] = {"train": [], "val": [], "test": []}

    def training_step(self, batch, batch_idx):
        assert isinstance(batch, CTBatch)
        self.seen["train"].append(batch)
        return (self.weight - batch.image.mean()) ** 2

    def validation_step(self, batch, batch_idx):
        self.seen["val"].append(batch)

    def test_step(self, batch, batch_idx):
        self.seen["test"].append(batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _trainer(**kwargs) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        **kwargs,
    )


def test_lightning_trainer_epochs_and_shared_test_set():
    dm = make_dm()
    model = _Recorder()
    _trainer(max_epochs=2).fit(model, datamodule=dm)
    train = model.seen["train"]
    assert len(train) == 4
    assert cat(train[:2], "index").tolist() == list(range(8))  # epoch 0
    assert cat(train[2:], "index").tolist() == list(range(8, 16))  # epoch 1: fresh phantoms
    assert len(model.seen["val"]) == 2 * 2
    assert torch.equal(
        cat(model.seen["val"][:2], "sinogram"), cat(model.seen["val"][2:], "sinogram")
    )
    _trainer().test(model, datamodule=dm)
    manual = make_dm()
    manual.setup("test")
    expected = collect(manual, manual.test_dataloader())
    assert torch.equal(cat(model.seen["test"], "sinogram"), cat(expected, "sinogram"))


@pytest.mark.parametrize("num_workers", [0, 1])
@pytest.mark.parametrize("source", ["ellipses", "folder"])
def test_a_resumed_run_trains_on_the_uninterrupted_runs_batches(source, num_workers, tmp_path):
    """Stopped mid-epoch at step 3 and resumed to step 5, a run sees exactly the batches (stream
    indices, images, doses, noise) of one uninterrupted run: for an infinite stream and for a
    finite source (a new order each epoch, continued), with loader workers too (they ask for
    indices before Lightning sets the epoch)."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    slices = tmp_path / "slices"
    for split in ("train", "val"):
        (slices / split).mkdir(parents=True)
    for k in range(4):  # slice k is constant k: its image names it
        np.save(slices / "train" / f"{k}.npy", np.full((32, 32), float(k), np.float32))
    np.save(slices / "val" / "v.npy", np.zeros((32, 32), np.float32))
    options = dict(train_size=4, val_size=1, test_size=1, batch_size=2, seed=3)
    options.update(num_workers=num_workers, persistent_workers=False)
    options.update(train_photons_range=[1e3, 1e5])
    if source == "folder":
        options.update(source="folder", folder_root=str(slices), train_size=None)

    def run(max_steps: int, resume: str | None = None, save: bool = False) -> list[tuple]:
        model = _Recorder()
        callbacks = [ModelCheckpoint(tmp_path, "mid", every_n_train_steps=3)] if save else []
        trainer = L.Trainer(
            accelerator="cpu",
            logger=False,
            enable_checkpointing=save,
            enable_progress_bar=False,
            enable_model_summary=False,
            max_steps=max_steps,
            limit_val_batches=0,
            callbacks=callbacks,
        )
        trainer.fit(model, datamodule=make_dm(**options), ckpt_path=resume)
        return [
            (b.index.tolist(), b.image.mean((1, 2, 3)).tolist(), float(b.sinogram.sum()))
            for b in model.seen["train"]
        ]

    whole = run(5)
    assert [index for index, _, _ in whole] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    if source == "folder":  # every slice once an epoch, in a new order each epoch
        epochs = [sorted(m for _, means, _ in whole[e : e + 2] for m in means) for e in (0, 2)]
        assert epochs == [[0.0, 1.0, 2.0, 3.0]] * 2
        assert [m for _, ms, _ in whole[:2] for m in ms] != [
            m for _, ms, _ in whole[2:4] for m in ms
        ]
    assert run(3, save=True) == whole[:3]
    assert run(5, resume=str(tmp_path / "mid.ckpt")) == whole[3:]


def test_data_parallel_processes_share_the_stream_and_draw_their_own_noise():
    """Under DDP each process takes every other stream index (Lightning leaves the sampler as
    it is: it is a ``DistributedSampler``), also when resuming, and training batch ``k`` of
    rank ``r`` draws the noise of the run's batch ``2 k + r``."""
    import types

    from torch.utils.data import DistributedSampler

    from learnct.data import EpochStreamSampler

    shards = [EpochStreamSampler(9, 0, rank, 2) for rank in (0, 1)]
    assert [list(s) for s in shards] == [[0, 2, 4, 6], [1, 3, 5, 7]]
    assert [len(s) for s in shards] == [4, 4] and isinstance(shards[0], DistributedSampler)
    resumed = [list(EpochStreamSampler(9, 13, rank, 2)) for rank in (0, 1)]
    assert resumed == [[13, 15], [14, 16]]  # in epoch 1 (indices 9-17), from 13
    # resumed at epoch 0's end (8: index 8 is the odd one left out): epoch 1, not an empty
    # remainder of epoch 0 (loader workers ask before Lightning sets the epoch)
    at_the_end = [list(EpochStreamSampler(9, 8, rank, 2)) for rank in (0, 1)]
    assert at_the_end == [[9, 11, 13, 15], [10, 12, 14, 16]]
    with pytest.raises(ValueError, match="rank 2 is not one of 2 processes"):
        EpochStreamSampler(9, 0, 2, 2)

    sinograms = []
    for rank in (0, 1):
        dm = make_dm(pin_memory=False)
        dm.trainer = types.SimpleNamespace(global_rank=rank, world_size=2)
        dm.setup("fit")
        batch = next(iter(dm.train_dataloader()))
        assert batch["index"].tolist() == [rank, rank + 2, rank + 4, rank + 6]
        clean = OPERATOR(batch["image"])
        seed = derive_seed(11, "train-noise", rank)  # batch 0 of this rank: 0 * 2 + rank
        expected = PRESET.simulate(clean, torch.Generator().manual_seed(seed))
        sinograms.append(dm.on_after_batch_transfer(batch, 0).sinogram)
        torch.testing.assert_close(sinograms[-1], expected, rtol=0, atol=0)
        assert dm.state_dict()["train_stream_next"] == 8  # after rank 1's index 7
    assert not torch.equal(*sinograms)
    small = make_dm(train_size=1, pin_memory=False)
    small.trainer = types.SimpleNamespace(global_rank=0, world_size=2)
    with pytest.raises(ValueError, match="train_size=1 is less than the 2 training processes"):
        small.train_dataloader()


def test_training_on_official_observations_moves_the_stream_position():
    """A training batch of LoDoPaB's own measurements (no simulated noise) still tells the
    checkpoint where the stream is, so a resume continues there."""
    dm = make_dm()
    image = torch.rand(2, 1, 32, 32)
    batch = {"image": image, "index": torch.tensor([4, 5]), "observation": OPERATOR(image)}
    dm.simulate(batch)
    assert dm.state_dict()["train_stream_next"] == 6


# ---- noise statistics ----------------------------------------------------------------------------
def test_poisson_noise_statistics():
    photons = 2e4
    dm = make_dm(photons=photons, test_size=16, test_source="shepp_logan", eval_batch_size=16)
    dm.setup("test")
    batch = collect(dm, dm.test_dataloader())[0]
    mu = PRESET.mu
    expected_counts = photons * torch.exp(-mu * batch.clean_sinogram)
    # Delta method: std of -log(N / I0) / mu is 1 / (mu sqrt(E[N])).
    z = (batch.sinogram - batch.clean_sinogram) * mu * expected_counts.sqrt()
    assert abs(float(z.mean())) < 0.02 and abs(float(z.std()) - 1) < 0.03
    counts = photons * torch.exp(-mu * batch.sinogram)  # recovered photon counts
    dispersion = ((counts - expected_counts) ** 2 / expected_counts).mean()
    assert abs(float(dispersion) - 1) < 0.05  # Poisson: variance = mean
    low = make_dm(photons=photons / 16, test_size=16, test_source="shepp_logan", eval_batch_size=16)
    low.setup("test")
    low_batch = collect(low, low.test_dataloader())[0]
    low_std = (low_batch.sinogram - low_batch.clean_sinogram).std()
    high_std = (batch.sinogram - batch.clean_sinogram).std()
    assert math.isclose(float(low_std / high_std), 4.0, rel_tol=0.1)  # std ~ 1/sqrt(photons)


def test_gaussian_noise_statistics():
    geometry = ParallelBeamGeometry(image_size=32, n_angles=30, n_detectors=46)
    preset = PhysicsPreset("small_parallel", geometry, noise="gaussian", photons=None)
    dm = CTDataModule(preset, source="ellipses", train_size=4, test_size=8, batch_size=8, seed=1)
    dm.setup("test")
    batch = collect(dm, dm.test_dataloader())[0]
    residual = batch.sinogram - batch.clean_sinogram
    sigma = 0.05 * batch.clean_sinogram.abs().mean(dim=(1, 2, 3))
    ratio = residual.std(dim=(1, 2, 3)) / sigma
    torch.testing.assert_close(ratio, torch.ones(8), rtol=0, atol=0.05)
    with pytest.raises(ValueError, match="photons only applies to Poisson presets"):
        CTDataModule(preset, photons=1e3)


# ---- LoDoPaB through the DataModule ------------------------------------------------------------
def test_lodopab_source_and_official_observations_units(tmp_path):
    geometry = ParallelBeamGeometry(image_size=16, n_angles=12, n_detectors=23)
    preset = PhysicsPreset("small_lodopab", geometry, photons=4096, mu=MU_MAX, min_counts=0.1)
    operator = RayTransform(geometry)
    images = torch.rand(3, 1, 16, 16)
    with torch.no_grad():
        line_integrals_m = operator(images)[:, 0].numpy() / 1000  # LoDoPaB's metres
    for kind, array in (("ground_truth", images[:, 0].numpy()), ("observation", line_integrals_m)):
        with h5py.File(tmp_path / f"{kind}_test_000.hdf5", "w") as f:
            f.create_dataset("data", data=array)
    dm = CTDataModule(
        preset,
        operator,
        source="lodopab",
        lodopab_root=tmp_path,
        batch_size=3,
        use_official_observations=True,
    )
    dm.setup("test")
    batch = collect(dm, dm.test_dataloader())[0]
    torch.testing.assert_close(batch.image, images)
    torch.testing.assert_close(batch.sinogram, batch.clean_sinogram, rtol=1e-5, atol=1e-5)
    simulated = CTDataModule(preset, operator, source="lodopab", lodopab_root=tmp_path)
    simulated.setup("test")
    noisy = collect(simulated, simulated.test_dataloader())[0]
    assert not torch.equal(noisy.sinogram, noisy.clean_sinogram)
    with pytest.raises(ValueError, match="needs the lodopab source"):
        CTDataModule(preset, operator, use_official_observations=True)


def test_missing_lodopab_folder_surfaces_in_setup(tmp_path):
    dm = make_dm(source="lodopab", lodopab_root=tmp_path / "missing")
    with pytest.raises(DataError, match=r"(?s)missing does not exist.*zenodo"):
        dm.setup("fit")


def test_worker_error_is_the_one_line_of_the_worker(tmp_path):
    """A DataError raised in a DataLoader worker (where the pixels are first read) arrives in
    the main process as a DataError with the worker's message alone; torch's re-raise with the
    worker's traceback is kept in ``worker_traceback``."""
    path = tmp_path / "t.npy"
    image = np.zeros((32, 32), np.float32)
    image[3, 4] = np.inf  # found only when the pixels are read
    np.save(path, image)
    dm = make_dm(source="folder", folder_root=tmp_path, test_size=None, num_workers=1)
    dm.setup("test")
    with pytest.raises(DataError) as info:
        next(iter(dm.test_dataloader()))
    assert str(info.value) == f"{path}: contains NaN or infinite values"
    assert info.value.worker_traceback.startswith("Caught DataError in DataLoader worker process 0")
    assert "Traceback (most recent call last)" in info.value.worker_traceback
    assert DataError("Caught DataError in a way of our own").worker_traceback is None


# ---- bad configuration ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be an integer >= 1"),
        ({"batch_size": -2}, "batch_size must be an integer >= 1"),
        ({"eval_batch_size": 0}, "eval_batch_size must be an integer >= 1"),
        ({"train_size": 0}, "train_size must be an integer >= 1"),
        ({"test_size": 0}, "test_size must be an integer >= 1"),
        ({"num_workers": -1}, "num_workers must be an integer >= 0"),
        (
            {"source": "mnist"},
            r"source='mnist' is not valid: 'mnist' is not a data source.*\('ellipses'",
        ),
        ({"test_source": []}, r"test_source=\[\] is not valid: name a source or a list"),
        ({"val_source": ["ellipses", "ellipses"]}, "names a source twice"),
        ({"photons": 0}, "photons=0 is not valid: it must be a positive finite number"),
        ({"physics": "nope", "operator": None}, "unknown physics preset 'nope'"),
        ({"operator": RayTransform(FanBeamGeometry(image_size=16))}, "geometry .* differs"),
    ],
)
def test_bad_configuration(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_dm(**kwargs)


def test_empty_folder_and_zero_length_split(tmp_path):
    for split in ("train", "val"):
        (tmp_path / split).mkdir()
    with pytest.raises(DataError, match="holds no slices"):
        make_dm(source="folder", folder_root=tmp_path, train_size=None).setup("fit")
    for split in ("train", "val"):
        np.save(tmp_path / split / "a.npy", np.zeros((32, 32), np.float32))
    with pytest.raises(
        DataError, match=r"val size 6 requested but there are only 1 slices in the slice folder"
    ):
        make_dm(source="folder", folder_root=tmp_path, train_size=None).setup("fit")


def test_phantoms_on_device_give_the_same_training_batches():
    """``phantoms_on_device``: the loaders carry ellipse sets, rasterised per batch in
    ``on_after_batch_transfer``; images, noise and indices are those of the default path."""
    batches = {}
    for on_device in (False, True):
        dm = make_dm(phantoms_on_device=on_device, supersample=2)
        dm.setup("fit")
        batches[on_device] = collect(dm, dm.train_dataloader())
    first = next(iter(make_dm(phantoms_on_device=True).train_dataloader()))
    assert "image" not in first and first["ellipses"].shape == (4, 160, 6)
    assert len(batches[True]) == len(batches[False]) == 2
    for ours, ref in zip(batches[True], batches[False], strict=True):
        assert ours.index.tolist() == ref.index.tolist()
        torch.testing.assert_close(ours.image, ref.image, rtol=0, atol=1e-6)
        torch.testing.assert_close(ours.sinogram, ref.sinogram, rtol=1e-5, atol=1e-4)
    assert cat(batches[True], "image").amax() > 0
    with pytest.raises(ValueError, match="phantoms_on_device rasterises ellipse phantoms"):
        make_dm(source="shepp_logan", phantoms_on_device=True)


# ---- dose variety ------------------------------------------------------------------------------
def _train_batch(dm: CTDataModule) -> CTBatch:
    dm.setup("fit")
    return dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)


def test_train_photons_range_per_sample_dose():
    """Each training index gets its own log-uniform dose, fixed by the index; the training
    noise follows it (a photon-starved range is far noisier); validation keeps the preset's."""
    dm = make_dm(train_photons_range=[1e2, 1e5])
    doses = dm.train_photons(torch.arange(400))
    assert doses == dm.train_photons(torch.arange(400))
    assert doses[:3] != make_dm(train_photons_range=[1e2, 1e5], seed=12).train_photons(
        torch.arange(3)
    )
    logs = np.log10(doses)
    assert logs.min() >= 2 and logs.max() <= 5
    assert abs(logs.mean() - 3.5) < 0.1 and abs(np.mean(logs < 3) - 1 / 3) < 0.06  # log-uniform

    def residual_std(dm):
        b = _train_batch(dm)
        return float((b.sinogram - b.clean_sinogram).std())

    starved = residual_std(make_dm(train_photons_range=[30, 30]))
    assert starved == pytest.approx(residual_std(make_dm(photons=30)), rel=0.15)
    assert starved > 5 * residual_std(make_dm())
    dm.setup("validate")
    ranged = collect(dm, dm.val_dataloader())
    plain = collect(make_dm(), make_dm().val_dataloader())
    torch.testing.assert_close(cat(ranged, "sinogram"), cat(plain, "sinogram"), rtol=0, atol=0)


def test_train_doses_travel_in_the_batch_and_keep_the_stream():
    """The loader computes each training sample's dose on the CPU (``photons``, float64) and no
    ``noise_seed``; the batch is simulated in one call, sample for sample the draws of the
    documented stream: sample k at its dose, one generator per batch, in index order."""
    dm = make_dm(train_photons_range=[1e2, 1e5])
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    assert "noise_seed" not in raw and raw["photons"].dtype == torch.float64
    doses = [train_dose(11, i, (1e2, 1e5)) for i in range(4)]
    assert raw["photons"].tolist() == doses == dm.train_photons(raw["index"])
    batch = dm.on_after_batch_transfer(raw, 0)
    gen = torch.Generator().manual_seed(derive_seed(11, "train-noise", 0))
    alone = [
        dataclasses.replace(PRESET, photons=d).simulate(batch.clean_sinogram[k : k + 1], gen)
        for k, d in enumerate(doses)
    ]
    assert torch.equal(batch.sinogram, torch.cat(alone))
    assert dm.state_dict() == {"train_noise_batches": 1, "train_stream_next": 4}
    with pytest.raises(ValueError, match="training batch has no 'photons'"):
        dm.simulate({k: v for k, v in raw.items() if k != "photons"})


@pytest.mark.parametrize(
    ("photons_range", "phantoms_on_device"),
    [(None, False), ([1e2, 1e5], False), ([1e2, 1e5], True)],
)
def test_training_simulation_reads_nothing_from_the_device(photons_range, phantoms_on_device):
    """A training batch goes to its ``CTBatch`` without one read of its values (each would be
    a host synchronisation per step on a GPU): under ``FakeTensorMode`` tensors hold no data,
    and ``.tolist()``, ``.item()``, ``int()``, ``if tensor`` or a boolean mask's data-dependent
    size raise. ``phantoms_on_device``: the rasterisation too."""
    operator = RayTransform(GEOMETRY, check_finite=False)  # the operator's own NaN check reads
    dm = make_dm(
        operator=operator,
        train_photons_range=photons_range,
        phantoms_on_device=phantoms_on_device,
    )
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    mode = FakeTensorMode()
    fake = {key: mode.from_tensor(value) for key, value in raw.items()}
    with mode:
        batch = dm.simulate(fake)
    assert isinstance(batch.sinogram, FakeTensor) and batch.sinogram.shape == (4, 1, 40, 48)
    assert dm.train_noise_batches == 1
    dm.simulate(raw)  # a real batch: the stream position is read when asked
    assert dm.train_stream_next == 4
    with mode, pytest.raises(DataDependentOutputException):  # evaluation seeds are read
        dm.simulate({**fake, "noise_seed": mode.from_tensor(torch.arange(4))})


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ([1e3], r"give \[low, high\]"),
        ([1e5, 1e3], "low > high"),
        ([0.5, 1e3], "photons=0.5 is not valid"),
    ],
)
def test_train_photons_range_bad(value, message):
    with pytest.raises(ValueError, match=message):
        make_dm(train_photons_range=value)


@pytest.mark.parametrize(
    ("pin_memory", "device", "pinned"),
    [(None, "cpu", False), (None, "cuda", True), (False, "cuda", False), (True, "cpu", True)],
)
def test_loaders_pin_memory_when_the_trainer_is_on_cuda(pin_memory, device, pinned):
    """``pin_memory=None`` (the default) pins the batches of a Trainer on CUDA, whose copies to
    the GPU are then asynchronous; an explicit value stands."""
    import types

    dm = make_dm(pin_memory=pin_memory)
    strategy = types.SimpleNamespace(root_device=torch.device(device))
    dm.trainer = types.SimpleNamespace(strategy=strategy, global_rank=0, world_size=1)
    assert dm.train_dataloader().pin_memory is pinned
    assert dm.val_dataloader().pin_memory is pinned


def test_the_stream_loader_resumes_and_its_empty_state_is_not_saved():
    """An infinite stream's training loader tells Lightning that it resumes (``state_dict``);
    its state is empty (the DataModule's holds the position) and is left out of checkpoints,
    which a run whose loader has no state (a finite source's) could not load otherwise."""
    from lightning.fabric.utilities.types import _Stateful  # what Lightning checks

    from learnct.data.datamodule import StreamLoader, drop_stream_loader_state

    dm = make_dm()
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader, StreamLoader) and isinstance(loader, _Stateful)
    assert not isinstance(dm.val_dataloader(), _Stateful)
    saved = {"loops": {"fit_loop": {"state_dict": {"combined_loader": [loader.state_dict()]}}}}
    drop_stream_loader_state(saved)
    assert saved == {"loops": {"fit_loop": {"state_dict": {}}}}
    other = {"loops": {"fit_loop": {"state_dict": {"combined_loader": [{"position": 3}]}}}}
    drop_stream_loader_state(other)  # a loader state that holds something stays
    assert other["loops"]["fit_loop"]["state_dict"]["combined_loader"] == [{"position": 3}]
