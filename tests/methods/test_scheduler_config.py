"""The learning-rate schedule of the model configs: a ``_partial_`` scheduler target (as the
optimiser) that gives the same learning rates as the ``scheduler: cosine`` of earlier configs,
checkpoints and run folders, which still load."""

from __future__ import annotations

import hydra
import lightning as L
import pytest
import torch

from conftest import CONFIG_DIR
from learnct.methods import LearnedPrimalDual
from learnct.physics import FanBeamGeometry, RayTransform

SCHEDULED = sorted(
    p.stem for p in (CONFIG_DIR / "model").glob("*.yaml") if "scheduler" in p.read_text()
)
STEPS = 40


@pytest.fixture(scope="module")
def operator() -> RayTransform:
    return RayTransform(FanBeamGeometry(image_size=16, n_angles=8, n_detectors=24))


def _learning_rates(operator: RayTransform, scheduler, interval: str = "step") -> list[float]:
    """The learning rate at steps 0, T/2 and T of a T-step run with ``scheduler``."""
    method = LearnedPrimalDual(operator, n_iter=1, scheduler=scheduler, scheduler_interval=interval)
    method.trainer = L.Trainer(max_steps=STEPS, accelerator="cpu", logger=False)
    config = method.configure_optimizers()
    assert config["lr_scheduler"]["interval"] == "step"
    optimizer, sched = config["optimizer"], config["lr_scheduler"]["scheduler"]
    rates = {}
    for step in range(STEPS + 1):
        rates[step] = optimizer.param_groups[0]["lr"]
        optimizer.step()
        sched.step()
    return [rates[0], rates[STEPS // 2], rates[STEPS]]


def test_every_learned_model_config_has_a_scheduler():
    assert SCHEDULED == ["fbpunet", "learned_inverse", "lgd", "lpd"]


@pytest.mark.parametrize("model", SCHEDULED)
def test_scheduler_target_gives_the_cosine_schedule(model, compose_config, operator):
    cfg = compose_config("train", [f"model={model}", f"trainer.max_steps={STEPS}"])
    assert cfg.model.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"
    assert cfg.model.scheduler_interval == "step"
    partial = hydra.utils.instantiate(cfg.model.scheduler)
    rates = _learning_rates(operator, partial, cfg.model.scheduler_interval)
    assert rates == _learning_rates(operator, "cosine")
    assert rates == [1e-3, pytest.approx(5e-4, rel=1e-12), 0.0]


@pytest.mark.parametrize("value", ["cosine", "none", "null"])
def test_earlier_scheduler_strings_still_compose_and_build(value, compose_config, operator):
    """Run folders and checkpoints of earlier learnct say ``scheduler: cosine``."""
    cfg = compose_config("train", ["model=lpd", "model.n_iter=1", f"model.scheduler={value}"])
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(operator=operator)
    model.trainer = L.Trainer(max_steps=STEPS, accelerator="cpu", logger=False)
    config = model.configure_optimizers()
    if value == "cosine":
        assert isinstance(
            config["lr_scheduler"]["scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR
        )
    else:
        assert isinstance(config, torch.optim.Adam)


def test_a_run_started_with_scheduler_cosine_resumes_with_its_settings(compose_config):
    """A run folder of earlier learnct (``scheduler: cosine``, no ``scheduler_interval``) has
    other settings than today's config; docs/reliability.md gives the overrides that match."""
    from learnct.run.identity import differences, run_settings

    today = run_settings(compose_config("train", ["experiment=lpd"]))
    earlier = {**today, "model": {**today["model"], "scheduler": "cosine"}}
    del earlier["model"]["scheduler_interval"]
    assert differences(earlier, today)  # resume=true alone refuses it, saying what differs
    matching = ["experiment=lpd", "model.scheduler=cosine", "~model.scheduler_interval"]
    assert differences(earlier, run_settings(compose_config("train", matching))) == []


OPTIMIZERS = sorted(p.stem for p in (CONFIG_DIR / "model" / "optimizer").glob("*.yaml"))
SCHEDULERS = sorted(p.stem for p in (CONFIG_DIR / "model" / "scheduler").glob("*.yaml"))


#: where an option may be picked: a model's defaults, and the paper schedules (which pick
#: options of their own that a command-line choice then replaces)
BASES = {
    "model": ["model=lpd"],
    "lpd_paper": ["experiment=paper/lpd_parallel_ellipses"],
    "lgd_paper": ["experiment=paper/lgd_parallel_ellipses"],
}


def _built(compose_config, operator, overrides: list[str], base: str = "model"):
    """The composed ``cfg.model`` and what ``configure_optimizers`` builds from it."""
    cfg = compose_config("train", [*BASES[base], "model.n_iter=1", *overrides])
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(operator=operator)
    model.trainer = L.Trainer(max_steps=STEPS, accelerator="cpu", logger=False)
    return cfg.model, model.configure_optimizers()


def test_the_option_groups_are_the_documented_ones():
    assert OPTIMIZERS == ["adam", "rmsprop"]
    assert SCHEDULERS == ["constant", "cosine", "inverse_time"]


@pytest.mark.parametrize("model", SCHEDULED)
def test_every_learned_model_defaults_to_adam_and_cosine(model, compose_config):
    cfg = compose_config("train", [f"model={model}"])
    assert cfg.model.optimizer._target_ == "torch.optim.Adam"
    assert cfg.model.scheduler._target_ == "torch.optim.lr_scheduler.CosineAnnealingLR"


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(
    ("option", "cls", "settings"),
    [
        ("adam", torch.optim.Adam, {"lr": 1e-3, "betas": (0.9, 0.99)}),
        ("rmsprop", torch.optim.RMSprop, {"lr": 1e-3, "alpha": 0.9, "eps": 1e-10}),
    ],
)
def test_an_optimizer_option_builds_its_class_with_only_its_settings(
    option, cls, settings, base, compose_config, operator
):
    """model/optimizer=<option> replaces the section, also in a paper experiment: no key of
    another option (Adam's betas, RMSprop's alpha) is merged into it."""
    section, built = _built(compose_config, operator, [f"model/optimizer={option}"], base)
    assert set(section.optimizer) == {"_target_", "_partial_", *settings}
    optimizer = built["optimizer"]
    assert type(optimizer) is cls
    assert {k: optimizer.defaults[k] for k in settings} == settings


@pytest.mark.parametrize("base", BASES)
@pytest.mark.parametrize(
    ("option", "keys", "rates"),
    [
        ("cosine", {"eta_min"}, [1e-3, pytest.approx(5e-4, rel=1e-12), 0.0]),
        ("constant", None, [1e-3, 1e-3, 1e-3]),
        # decays every 500 steps: not in a 40-step run
        ("inverse_time", {"lr_lambda"}, [1e-3, 1e-3, 1e-3]),
    ],
)
def test_a_scheduler_option_gives_its_learning_rates(
    option, keys, rates, base, compose_config, operator
):
    section, built = _built(compose_config, operator, [f"model/scheduler={option}"], base)
    if option == "constant":
        assert section.scheduler is None and isinstance(built, torch.optim.Optimizer)
        return
    assert set(section.scheduler) == {"_target_", "_partial_", *keys}
    partial = hydra.utils.instantiate(section.scheduler)
    assert _learning_rates(operator, partial) == rates


def test_inverse_time_halves_the_rate_after_its_decay_steps(compose_config, operator):
    _, built = _built(
        compose_config,
        operator,
        ["model/scheduler=inverse_time", "model.scheduler.lr_lambda.decay_steps=10"],
    )
    optimizer, sched = built["optimizer"], built["lr_scheduler"]["scheduler"]
    rates = []
    for _ in range(21):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        sched.step()
    assert (rates[9], rates[10], rates[20]) == (1e-3, 5e-4, pytest.approx(1e-3 / 3))
