"""Dose-aware LPD: the statistical weights of post-log Poisson data, and the weighted dual
steps started from a plain LPD's weights."""

from __future__ import annotations

import pytest
import torch

from conftest import TINY_FAN as GEOMETRY
from learnct.data.phantoms import random_ellipses, rasterize_ellipses
from learnct.methods import LearnedPrimalDual
from learnct.methods.checkpoints import apply_weights, check_architecture
from learnct.nets import LearnedPrimalDualNet
from learnct.physics import RayTransform
from learnct.physics.noise import simulate_low_dose, statistical_weights


def test_statistical_weights_are_the_inverse_variance_of_post_log_data():
    mu, photons = 0.02, 1e4
    y = torch.tensor([0.0, 50.0, 100.0, 150.0, 200.0])  # mu y = 0 ... 4: 10^4 ... 183 counts
    clean = y.expand(20000, -1).reshape(20000, 1, 1, 5).contiguous()
    noisy = simulate_low_dose(
        clean, photons, mu=mu, generator=torch.Generator().manual_seed(0)
    ).reshape(20000, 5)
    w = statistical_weights(y.view(1, 1, 1, 5), mu).flatten()
    assert float(w.mean()) == pytest.approx(1.0, abs=1e-6)
    assert torch.allclose(w / w[0], torch.exp(-mu * y), rtol=1e-6)
    # Var(y_noisy) ~ 1 / (mu^2 I0 exp(-mu y)): times w, the same for every ray
    scaled = noisy.var(0) * w
    assert float(scaled.max() / scaled.min()) < 1.1, scaled
    # per sample: a second sample with doubled line integrals has its own normalisation
    two = statistical_weights(torch.stack([y, 2 * y]).view(2, 1, 1, 5), mu)
    assert torch.allclose(two.flatten(1).mean(1), torch.ones(2))


def test_statistical_weights_mu_is_checked():
    operator = RayTransform(GEOMETRY)
    with pytest.raises(ValueError, match="mu must be a positive attenuation"):
        LearnedPrimalDual(operator, statistical_weights=True, mu=0.0)


@pytest.fixture(scope="module")
def data():
    operator = RayTransform(GEOMETRY)
    gen = torch.Generator().manual_seed(1)
    image = torch.stack([rasterize_ellipses(random_ellipses(gen), 32) for _ in range(2)])[:, None]
    sinogram = simulate_low_dose(operator(image), 1e3, mu=0.02, generator=gen)
    return operator, image, sinogram


def test_weighted_lpd_starts_from_plain_weights_with_the_same_function(data, capsys):
    operator, _, sinogram = data
    torch.manual_seed(0)
    plain = LearnedPrimalDual(operator, operator_norm=operator.norm())
    weighted = LearnedPrimalDual(
        operator, statistical_weights=True, operator_norm=plain.operator_norm()
    )
    first = "net.dual_blocks.0.0.weight"
    assert weighted.state_dict()[first].shape[1] == plain.state_dict()[first].shape[1] + 2
    checkpoint = {"state_dict": plain.state_dict()}
    check_architecture(weighted, checkpoint, "plain.ckpt")  # fits after widening
    apply_weights(weighted, checkpoint, "plain.ckpt")
    assert "start statistical_weights=true" in capsys.readouterr().out
    with torch.no_grad():
        assert torch.allclose(weighted(sinogram), plain(sinogram), atol=1e-6)
        # the new channels matter once their weights do
        weighted.net.dual_blocks[0][0].weight[:, -1] += 0.1
        assert (weighted(sinogram) - plain(sinogram)).abs().max() > 1e-3
    # a plain model does not take weighted weights, and the error names the setting
    with pytest.raises(ValueError, match="statistical_weights"):
        check_architecture(
            plain,
            {"state_dict": weighted.state_dict(), "hyper_parameters": dict(weighted.hparams)},
            "weighted.ckpt",
        )


def test_weighted_lpd_overfits_a_fixed_batch(data):
    operator, image, sinogram = data
    torch.manual_seed(0)
    method = LearnedPrimalDual(operator, statistical_weights=True)
    optimizer = torch.optim.Adam(method.parameters(), lr=1e-3, betas=(0.9, 0.99))
    losses = []
    for _ in range(60):
        loss = method.loss_fn(method(sinogram), image)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] / losses[-1] > 20, losses[::10]


def test_weighted_net_needs_weights_and_plain_net_refuses_them():
    g = torch.zeros(1, 1, 4, 6)
    identity = lambda x: x  # noqa: E731
    with pytest.raises(ValueError, match="needs weights"):
        LearnedPrimalDualNet(n_iter=1, weighted=True)(g, identity, identity, image_shape=(4, 6))
    with pytest.raises(ValueError, match="weighted=True"):
        LearnedPrimalDualNet(n_iter=1)(g, identity, identity, image_shape=(4, 6), weights=g)


def test_plain_checkpoint_loads_into_a_weighted_lpd_through_lightning(data, tmp_path):
    """``load_from_checkpoint`` (and ``trainer.test(ckpt_path=...)``) widen a plain LPD's
    weights through ``on_load_checkpoint``; a resumable checkpoint (optimiser state) is not
    widened, its moments keep the old shapes."""
    operator, _, sinogram = data
    torch.manual_seed(0)
    plain = LearnedPrimalDual(operator, operator_norm=operator.norm())
    path = tmp_path / "plain.ckpt"
    import lightning

    saved = {"state_dict": plain.state_dict(), "hyper_parameters": dict(plain.hparams)}
    torch.save({**saved, "pytorch-lightning_version": lightning.__version__}, path)
    weighted = LearnedPrimalDual.load_from_checkpoint(
        path, operator=operator, statistical_weights=True, weights_only=True
    )
    assert weighted.hparams.statistical_weights
    with torch.no_grad():
        assert torch.allclose(weighted(sinogram), plain(sinogram), atol=1e-6)
    state = {"state_dict": plain.state_dict(), "optimizer_states": [{}]}
    weighted.on_load_checkpoint(state)
    assert state["state_dict"]["net.dual_blocks.0.0.weight"].shape[1] == 7  # not widened


def test_init_weights_keeps_the_configs_statistical_weights():
    """A plain checkpoint's ``statistical_weights: false`` does not override the config's
    ``true`` when it only starts the training (``init_weights``); it does for evaluation."""
    from omegaconf import OmegaConf

    from learnct.run.checkpoint_settings import adopt_checkpoint_settings

    operator = RayTransform(GEOMETRY)
    plain = LearnedPrimalDual(operator, operator_norm=1.0)
    checkpoint = {
        "state_dict": plain.state_dict(),
        "hyper_parameters": dict(plain.hparams),
        "learnct": {"method": "LearnedPrimalDual"},
    }
    import learnct.methods.checkpoints as checkpoints

    def config(key):
        return OmegaConf.create(
            {
                "train": key == "init_weights",
                key: "plain.ckpt",
                "model": {
                    "_target_": "learnct.methods.LearnedPrimalDual",
                    "statistical_weights": True,
                    "n_iter": 10,
                },
            }
        )

    original = checkpoints.read_checkpoint
    checkpoints.read_checkpoint = lambda path: checkpoint
    try:
        started = config("init_weights")
        adopt_checkpoint_settings(started, user_keys=set())
        evaluated = config("ckpt_path")
        adopt_checkpoint_settings(evaluated, user_keys=set())
    finally:
        checkpoints.read_checkpoint = original
    assert started.model.statistical_weights is True
    assert evaluated.model.statistical_weights is False
