"""Cheap checks of a composed run config, before anything is built.

Each error is a :class:`ConfigError` that names the key, the value and what is allowed, so a
typo in a command line fails at once with a one-line message instead of a traceback from deep
inside torch, Lightning or Hydra. What the components check themselves when they are built
(geometry, model and data arguments) ``learnct.run.build`` reports the same way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from learnct.checks import is_int

__all__ = [
    "ACCELERATORS",
    "ConfigError",
    "in_sittings",
    "monitored_metric_names",
    "planned_steps",
    "validate_config",
]

ACCELERATORS = ("auto", "cpu", "gpu", "cuda", "mps", "tpu")


class ConfigError(ValueError):
    """A user mistake in the composed config: names the key, the value and what is allowed."""


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _has(cfg: DictConfig, key: str) -> bool:
    return OmegaConf.select(cfg, key, default="__missing__") != "__missing__"


def check_choice(cfg: DictConfig, key: str, allowed: Iterable[str]) -> None:
    """``key`` must be one of ``allowed`` (when the config has it)."""
    allowed = sorted(allowed)
    if _has(cfg, key) and _get(cfg, key) not in allowed:
        raise ConfigError(f"{key}={_get(cfg, key)!r} is not valid: choose one of {allowed}")


def check_flag(cfg: DictConfig, key: str) -> None:
    """``key`` must be true or false (when the config has it): ``test=maybe`` or ``train=1``
    would otherwise be read as Python reads the value."""
    if _has(cfg, key) and not isinstance(_get(cfg, key), bool):
        raise ConfigError(f"{key}={_get(cfg, key)!r} is not valid: use true or false")


def check_int(cfg: DictConfig, key: str, minimum: int, nullable: bool = False) -> None:
    """``key`` must be an integer >= ``minimum`` (or null when ``nullable``)."""
    if not _has(cfg, key):
        return
    value = _get(cfg, key)
    if value is None and nullable:
        return
    if not is_int(value) or value < minimum:
        null = " or null" if nullable else ""
        raise ConfigError(f"{key}={value!r} is not valid: it must be an integer >= {minimum}{null}")


def check_precision(cfg: DictConfig, key: str) -> None:
    """``key`` must be one of Lightning's precision settings, or null."""
    from learnct.config_names import PRECISIONS

    value = _get(cfg, key)
    if value is None or any(type(value) is type(p) and value == p for p in PRECISIONS):
        return
    raise ConfigError(
        f"{key}={value!r} is not valid: choose one of Lightning's precisions "
        f"{[p for p in PRECISIONS if isinstance(p, str) and '-' in p]} (or its aliases "
        f"{[p for p in PRECISIONS if not (isinstance(p, str) and '-' in p)]}), or null"
    )


def planned_steps(max_steps: Any) -> int | None:
    """A schedule's planned end from its ``trainer.max_steps``: ``None`` for ``None`` or -1
    (no bound in steps: ``trainer.max_epochs`` decides), else the number of steps."""
    return None if max_steps in (None, -1) else int(max_steps)


def in_sittings(cfg: DictConfig) -> bool:
    """Whether ``cfg`` runs its schedule in sittings (``sitting_steps`` or ``sitting_minutes``;
    :mod:`learnct.run.sittings`)."""
    return bool(_get(cfg, "sitting_steps") or _get(cfg, "sitting_minutes"))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: The numbers of a torch optimiser that must be finite and >= 0, and what they are.
_OPTIMIZER_NUMBERS = {
    "lr": "the learning rate; the experiments use 1e-3",
    "eps": "Adam's denominator offset; default 1e-8",
    "weight_decay": "the L2 penalty; 0: none",
}


def check_optimizer(cfg: DictConfig) -> None:
    """The numbers of ``model.optimizer`` (a partial of a torch optimiser) that torch would
    only check when training starts: ``lr``, ``eps`` and ``weight_decay`` finite and >= 0,
    ``betas`` two numbers in [0, 1)."""
    optimizer = _get(cfg, "model.optimizer")
    if not isinstance(optimizer, DictConfig):
        return
    for name, meaning in _OPTIMIZER_NUMBERS.items():
        value = optimizer.get(name)
        if name in optimizer and not (_is_number(value) and math.isfinite(value) and value >= 0):
            raise ConfigError(
                f"model.optimizer.{name}={value!r} is not valid: it must be a finite number >= 0 "
                f"({meaning})"
            )
    if "betas" in optimizer:
        betas = optimizer.get("betas")
        betas = OmegaConf.to_container(betas) if isinstance(betas, ListConfig) else betas
        if not (
            isinstance(betas, (list, tuple))
            and len(betas) == 2
            and all(_is_number(b) and 0 <= b < 1 for b in betas)
        ):
            raise ConfigError(
                f"model.optimizer.betas={betas!r} is not valid: it must be two numbers in [0, 1) "
                "(Adam's moment decay rates; the experiments use [0.9, 0.99])"
            )


def monitored_metric_names(cfg: DictConfig) -> list[str]:
    """The metrics a trainable method has logged by its first validation, which a checkpoint
    callback's ``monitor`` and ``optimized_metric`` may name (with several validation sources
    the validation metrics end in ``/dataloader_idx_<k>``)."""
    from learnct.config_names import TRAIN_METRICS, VAL_METRICS, source_names

    sources = _get(cfg, "data.val_source")
    count = 1 if sources is None else len(source_names(sources, "data.val_source"))
    if count == 1:
        return [*TRAIN_METRICS, *VAL_METRICS]
    per_source = [m for m in VAL_METRICS if m != "val/psnr_best"]
    indexed = [f"{m}/dataloader_idx_{k}" for m in per_source for k in range(count)]
    return [*TRAIN_METRICS, *indexed, "val/psnr_best"]


def check_metric_names(cfg: DictConfig) -> None:
    """``optimized_metric`` and every callback's ``monitor`` name a metric the methods log."""
    keys = ["optimized_metric"]
    callbacks = _get(cfg, "callbacks")
    if isinstance(callbacks, DictConfig):
        keys += [
            f"callbacks.{name}.monitor"
            for name, callback in callbacks.items()
            if isinstance(callback, DictConfig) and "monitor" in callback
        ]
    names = monitored_metric_names(cfg)
    for key in keys:
        value = _get(cfg, key)
        if value is not None and value not in names:
            raise ConfigError(
                f"{key}={value!r} is not a metric the methods log: choose one of {names}"
            )


def check_validation_interval(cfg: DictConfig) -> None:
    """A training run whose ``trainer.val_check_interval`` (batches) exceeds the batches of
    ``trainer.max_steps`` never validates, so it writes no checkpoint. A fractional interval
    (of an epoch) and ``max_steps=-1`` are left to Lightning."""
    interval = _get(cfg, "trainer.val_check_interval")
    max_steps = _get(cfg, "trainer.max_steps")
    accumulate = _get(cfg, "trainer.accumulate_grad_batches") or 1
    if _get(cfg, "train") is False or _get(cfg, "trainer.fast_dev_run"):
        return
    if not (is_int(interval) and is_int(max_steps) and is_int(accumulate) and max_steps >= 1):
        return
    if interval <= max_steps * accumulate:
        return
    limit = f"trainer.max_steps={max_steps}"
    if accumulate > 1:
        limit += f" x trainer.accumulate_grad_batches={accumulate} batches"
    raise ConfigError(
        f"trainer.val_check_interval={interval} is more than {limit}: training would end "
        "before its first validation and write no checkpoint; set "
        f"trainer.val_check_interval to at most {max_steps * accumulate}"
    )


def task_folder_name(name: object) -> str:
    """``name`` if it can be the run folder ``<log_dir>/<task_name>/``: one folder name."""
    name = str(name)
    if name in ("", ".", "..") or "/" in name or "\\" in name:
        raise ConfigError(
            f"task_name={name!r} is not valid: it names the run folder logs/<task_name>/, so it "
            "must be one folder name, without '/', '\\' or '..' (e.g. task_name=lgd_wide)"
        )
    return name


def check_task_name(cfg: DictConfig) -> None:
    """``task_name`` names the run's folder ``<log_dir>/<task_name>/``: one folder name."""
    if _has(cfg, "task_name"):
        task_folder_name(_get(cfg, "task_name"))


def check_sources(cfg: DictConfig) -> None:
    """``data.source`` one source name; ``data.val_source``/``test_source`` one or a list
    (:func:`~learnct.config_names.source_names`; null: the training source)."""
    from learnct.config_names import SOURCES, source_names

    check_choice(cfg, "data.source", SOURCES)
    for key in ("data.val_source", "data.test_source"):
        if _get(cfg, key) is not None:
            try:
                source_names(_get(cfg, key), key)
            except ValueError as err:
                raise ConfigError(str(err)) from None


def check_max_steps(cfg: DictConfig) -> None:
    """``trainer.max_steps``: a number of steps, or -1 (``trainer.max_epochs`` decides)."""
    max_steps = _get(cfg, "trainer.max_steps")
    if _has(cfg, "trainer.max_steps") and not (
        is_int(max_steps) and (max_steps == -1 or max_steps >= 1)
    ):
        raise ConfigError(
            f"trainer.max_steps={max_steps!r} is not valid: it must be an integer >= 1, or -1 "
            "(no limit: trainer.max_epochs decides)"
        )


def _cpu_processes(devices: Any) -> int | None:
    """How many CPU processes Lightning's ``devices`` asks for (``"auto"``: one); ``None``
    where it is not a count of CPU processes (``-1``, which Lightning refuses on the CPU)."""
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if devices == "auto":
        return 1
    if isinstance(devices, (list, ListConfig)):
        return len(devices)
    return int(devices) if is_int(devices) and devices >= 1 else None


def check_cpu_processes(cfg: DictConfig) -> None:
    """``trainer.devices`` on the CPU (``trainer.accelerator=cpu``): a number of processes,
    and several of them need forked workers, ``trainer.strategy=ddp_fork``: Lightning's own
    choice (``ddp``) starts each worker as a new ``learnct-train`` command, which Hydra
    composes into a run of its own, and failed in the test pass with gloo's traceback."""
    if _get(cfg, "trainer.accelerator") != "cpu" or not _has(cfg, "trainer.devices"):
        return
    devices = _get(cfg, "trainer.devices")
    processes = _cpu_processes(devices)
    if processes is None:
        raise ConfigError(
            f"trainer.devices={devices!r} is not valid on the CPU: give a number of processes "
            "(1: one process uses every core through torch's threads; 2 with "
            "+trainer.strategy=ddp_fork for data parallel)"
        )
    strategy = _get(cfg, "trainer.strategy")
    if processes > 1 and strategy in (None, "auto", "ddp"):
        raise ConfigError(
            f"trainer.devices={devices!r} on the CPU ({processes} processes) needs forked "
            "workers: add +trainer.strategy=ddp_fork (trainer=ddp: trainer.strategy=ddp_fork); "
            "one process already uses every core through torch's threads (trainer.devices=1)"
        )


def check_resume(cfg: DictConfig) -> None:
    """``resume`` (true, false or a run folder) and ``ckpt_path``: at most one of them, and
    ``ckpt_path`` only to test (``train=false``): a run continues by ``resume``, whose checks
    and run folder a bare checkpoint would skip."""
    resume = _get(cfg, "resume")
    if not (resume in (None, True, False) or (isinstance(resume, str) and resume)):
        raise ConfigError(
            f"resume={resume!r} is not valid: use true, false or a run folder "
            "(logs/<task_name>/runs/<name>)"
        )
    if resume and _get(cfg, "ckpt_path"):
        raise ConfigError(
            f"resume=true and ckpt_path={_get(cfg, 'ckpt_path')!r} both say where to resume "
            "from: set only one (resume=true continues the newest run of this task_name)"
        )
    ckpt_path = _get(cfg, "ckpt_path")
    if ckpt_path and _get(cfg, "train") is not False:
        raise ConfigError(
            f"ckpt_path={ckpt_path!r} names a checkpoint to test (train=false: make eval "
            "EXP=<name> CKPT=<file>), not one to train from: to continue a run use "
            "resume=<its run folder> or resume=true (its settings checked; its folder, "
            "checkpoints and step count continued), to train from its weights "
            "init_weights=<file>"
        )


def check_sittings(cfg: DictConfig) -> None:
    """``sitting_steps``/``sitting_minutes``/``sitting_save_minutes``: positive, with a
    schedule length (``trainer.max_steps``), and not with ``resume``/``ckpt_path`` (sittings
    continue their own checkpoint)."""
    check_int(cfg, "sitting_steps", 1, nullable=True)
    minutes = {key: _get(cfg, key) for key in ("sitting_minutes", "sitting_save_minutes")}
    for key, value in minutes.items():
        if value is not None and not (_is_number(value) and 0 < value < float("inf")):
            what = (
                "the minutes of training a sitting may take (e.g. 8 for a 10-minute lease)"
                if key == "sitting_minutes"
                else "the minutes of training between the saves of a sitting (e.g. 20)"
            )
            raise ConfigError(f"{key}={value!r} is not valid: give {what}, or null")
    if not in_sittings(cfg):
        return
    if _get(cfg, "resume") or _get(cfg, "ckpt_path"):
        raise ConfigError(
            "sittings (sitting_steps, sitting_minutes) continue their own checkpoint "
            "(sitting_dir/last.ckpt): unset resume and ckpt_path (init_weights may start the "
            "first sitting)"
        )
    max_steps = _get(cfg, "trainer.max_steps")
    if not (is_int(max_steps) and max_steps >= 1):
        raise ConfigError(
            f"sittings need the schedule's length: trainer.max_steps={max_steps!r} is not a "
            "number of steps (set it, e.g. trainer.max_steps=100000, or unset sitting_steps "
            "and sitting_minutes)"
        )


def check_init_weights(cfg: DictConfig) -> None:
    """``init_weights``: an existing checkpoint file, only to start training (not with
    ``train=false``; ``ckpt_path`` is refused with training by :func:`check_resume`)."""
    init_weights = _get(cfg, "init_weights")
    if init_weights is None:
        return
    if not isinstance(init_weights, str):
        raise ConfigError(f"init_weights={init_weights!r} is not valid: give a checkpoint path")
    if not init_weights:
        return
    if _get(cfg, "train") is False:
        raise ConfigError(
            f"init_weights={init_weights!r} only starts training; to evaluate a checkpoint "
            "use ckpt_path=... (make eval EXP=<name> CKPT=<file>)"
        )
    if not Path(init_weights).is_file():
        raise ConfigError(
            f"init_weights={init_weights!r}: no such checkpoint file or committed model "
            "(python -c 'import learnct; print(learnct.pretrained_names())' lists the names)"
        )


#: the ``extras`` flags (``configs/extras/default.yaml``; applied by ``learnct.run.extras``)
EXTRAS_FLAGS = ("enforce_tags", "ignore_warnings", "print_config")


def check_extras(cfg: DictConfig) -> None:
    """``extras.*``: booleans; ``extras.enforce_tags=true`` needs ``tags``."""
    for key in EXTRAS_FLAGS:
        check_flag(cfg, f"extras.{key}")
    if _get(cfg, "extras.enforce_tags") and not _get(cfg, "tags"):
        raise ConfigError(
            "tags is empty and extras.enforce_tags=true: name the run with tags=[...] "
            '(make train ARGS="tags=[baseline]"), or set extras.enforce_tags=false'
        )


def validate_config(cfg: DictConfig) -> None:
    """Check the keys a user most often gets wrong; raises :class:`ConfigError`."""
    from learnct.config_names import (
        BACKEND_NAMES,
        FILTERS,
        FOLDER_FITS,
        LOSS_NAMES,
        PRESET_NAMES,
    )

    check_int(cfg, "seed", 0)
    check_flag(cfg, "train")
    check_flag(cfg, "test")
    check_task_name(cfg)
    check_choice(cfg, "physics.preset", PRESET_NAMES)
    check_choice(cfg, "physics.backend", ["auto", *BACKEND_NAMES])
    check_int(cfg, "physics.image_size", 2, nullable=True)
    check_int(cfg, "physics.n_angles", 1, nullable=True)
    check_int(cfg, "physics.n_detectors", 1, nullable=True)
    check_sources(cfg)
    check_choice(cfg, "data.folder_fit", FOLDER_FITS)
    check_int(cfg, "data.batch_size", 1)
    check_int(cfg, "data.eval_batch_size", 1, nullable=True)
    for split in ("train", "val", "test"):
        check_int(cfg, f"data.{split}_size", 1, nullable=True)
    check_int(cfg, "data.num_workers", 0)
    for key in ("model.filter", "model.fbp_filter"):
        check_choice(cfg, key, FILTERS)
    check_choice(cfg, "model.loss", LOSS_NAMES)
    check_choice(cfg, "trainer.accelerator", ACCELERATORS)
    check_cpu_processes(cfg)
    check_precision(cfg, "trainer.precision")
    check_precision(cfg, "test_precision")
    check_optimizer(cfg)
    check_max_steps(cfg)
    check_validation_interval(cfg)
    check_metric_names(cfg)
    check_int(cfg, "max_nonfinite_steps", 1, nullable=True)
    check_resume(cfg)
    check_sittings(cfg)
    check_init_weights(cfg)
    check_extras(cfg)


def check_model_attenuation(cfg: DictConfig, mu: float, preset_name: str) -> None:
    """A method's ``model.mu`` (the attenuation per image unit of its statistical weights:
    TV-WLS, dose-aware LPD) must be the physics' ``mu`` (1/mm), else its weights are wrong."""
    model_mu = _get(cfg, "model.mu")
    if _is_number(model_mu) and abs(float(model_mu) - mu) > 1e-9 * mu:
        raise ConfigError(
            f"model.mu={model_mu!r} differs from the attenuation of the physics preset "
            f"{preset_name!r} (mu={mu:g} per image unit, 1/mm): set model.mu={mu:g}"
        )
