"""A batch-norm net trained at batch size 1 is evaluated as trained with ``norm=instance``."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_FAN as GEOMETRY
from learnct.data.phantoms import random_ellipses, rasterize_ellipses
from learnct.methods import FBPUNet
from learnct.methods.checkpoints import checkpoint_identity, load_weights
from learnct.physics import RayTransform
from learnct.run.pipeline import batch_norm_note


def _images(gen: torch.Generator, n: int, peak: float) -> torch.Tensor:
    x = torch.stack([rasterize_ellipses(random_ellipses(gen, mean_count=6), 32) for _ in range(n)])
    x = x[:, None]
    return peak * x / x.amax((1, 2, 3), keepdim=True).clamp_min(1e-6)


@pytest.fixture(scope="module")
def batch_one_checkpoint(tmp_path_factory):
    """An FBP + U-Net with batch norm, trained 30 steps at batch size 1 on images of peak 0.25
    (so its running averages fit that intensity), saved as a learnct checkpoint."""
    torch.manual_seed(0)
    operator = RayTransform(GEOMETRY)
    model = FBPUNet(operator, depth=2, width=8, norm="batch")
    gen = torch.Generator().manual_seed(1)
    train = _images(gen, 30, 0.25)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for x in train:
        loss = torch.nn.functional.mse_loss(model(operator(x[None])), x[None])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    path = tmp_path_factory.mktemp("ckpt") / "fbpunet_batch.ckpt"
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            "learnct": checkpoint_identity(model, GEOMETRY),
        },
        path,
    )
    return operator, model, path


def test_instance_norm_reproduces_batch_norm_training_statistics(batch_one_checkpoint):
    operator, trained, path = batch_one_checkpoint
    # test images four times brighter than the training images (as CT slices after ellipses)
    sinogram = operator(_images(torch.Generator().manual_seed(2), 3, 1.0))
    trained.train()  # batch statistics of one image at a time: what training computed
    with torch.no_grad():
        as_trained = torch.cat([trained(s[None]) for s in sinogram])
    running = trained.reconstruct(sinogram)  # eval mode: the running averages of training

    instance = FBPUNet(operator, depth=2, width=8, norm="instance")
    assert load_weights(instance, path, GEOMETRY) is None  # the file records no steps
    out = instance.reconstruct(sinogram)
    assert torch.allclose(out, as_trained, atol=1e-5)
    # the running averages, fitted to dimmer images, give a different (biased) result
    assert (running - as_trained).abs().mean() > 100 * (out - as_trained).abs().max()

    # Lightning's loading path (ckpt_path, load_from_checkpoint) goes through the hook
    checkpoint = torch.load(path, weights_only=True)
    again = FBPUNet(operator, depth=2, width=8, norm="instance")
    again.on_load_checkpoint(checkpoint)
    again.load_state_dict(checkpoint["state_dict"])  # strict: nothing left over
    assert torch.allclose(again.reconstruct(sinogram), as_trained, atol=1e-5)


def test_other_norms_still_refuse_a_batch_norm_checkpoint(batch_one_checkpoint):
    operator, _, path = batch_one_checkpoint
    group = FBPUNet(operator, depth=2, width=8, norm="group")
    with pytest.raises(ValueError, match=r"unexpected .*running_mean.*model\.norm=batch"):
        load_weights(group, path, GEOMETRY)


def test_batch_norm_at_batch_size_one_is_warned_about():
    operator = RayTransform(GEOMETRY)
    batch = FBPUNet(operator, depth=2, width=8, norm="batch")
    note = batch_norm_note(batch, 1)
    assert note is not None and "model.norm=instance" in note
    assert batch_norm_note(batch, 4) is None
    assert batch_norm_note(FBPUNet(operator, depth=2, width=8, norm="instance"), 1) is None
