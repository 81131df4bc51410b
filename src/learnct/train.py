"""``learnct-train`` / ``make train EXP=<name>``: train (or, for FBP and TV, evaluate) one method
from a Hydra config, then test it on the fixed test set and print a results row.

The physics is built once here (preset -> geometry -> ``RayTransform``) and injected into both
the DataModule (simulation) and the method (reconstruction), so the two can never disagree.

Reliability (docs/reliability.md): the config is checked before anything is built and user
mistakes end with a one-line message (exit status 2), not a traceback; torch and Lightning are
imported only once the config composed, so a typo in a config group fails fast. ``resume=true``
continues the newest run of the task in its own folder from its ``last.ckpt``; checkpoints are
written atomically; non-finite steps are skipped (``max_nonfinite_steps`` in a row stop the
run); W&B falls back to offline; a failing sweep job is recorded and the sweep goes on; every
results row carries the test-set hash, the git commit and the library versions.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import hydra
from omegaconf import DictConfig, OmegaConf

from learnct.reliability.config_checks import ConfigError, validate_config
from learnct.reliability.provenance import git_commit, library_versions
from learnct.run_grouping import register_resolvers

if TYPE_CHECKING:  # torch and Lightning are imported when a run starts (fast config errors)
    import lightning as L

    from learnct.physics import PhysicsPreset, RayTransform

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "RunResult",
    "build_physics",
    "main",
    "resolve_resume",
    "run",
]

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
register_resolvers()
RESULT_FIELDS = (
    "method",
    "physics",
    "n_images",
    "test_set",
    "psnr",
    "ssim",
    "ms_per_slice",
    "fbp_psnr",
    "fbp_ssim",
    "device",
    "commit",
    "run_dir",
    "test_hash",
    "torch_version",
    "lightning_version",
    "python_version",
    "learnct_version",
)


def _user_errors() -> tuple[type[Exception], ...]:
    """Errors that are the user's to fix: printed as one line, exit status 2."""
    from learnct.data.errors import DataError

    return (ConfigError, DataError)


def _choice(cfg: DictConfig, key: str, allowed: list[str]) -> str:
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not valid: choose one of {sorted(allowed)}")
    return value


def build_physics(cfg: DictConfig) -> tuple[PhysicsPreset, RayTransform]:
    """The run's physics preset (with any ``physics.photons`` and geometry overrides) and its
    operator."""
    from learnct.physics import PRESETS, RayTransform

    name = _choice(cfg, "physics.preset", list(PRESETS))
    preset = PRESETS[name]()
    photons = cfg.physics.get("photons")
    if photons is not None:
        if preset.noise != "poisson":
            raise ConfigError(
                f"physics.photons={photons} only applies to Poisson presets; {name!r} uses "
                f"{preset.noise} noise"
            )
        if not isinstance(photons, (int, float)) or isinstance(photons, bool) or photons <= 0:
            raise ConfigError(f"physics.photons={photons!r} must be a positive number")
        preset = dataclasses.replace(preset, photons=float(photons))
    preset = _with_geometry_overrides(preset, cfg)
    try:
        operator = RayTransform(preset.geometry, backend=cfg.physics.get("backend", "auto"))
    except ValueError as err:
        raise ConfigError(f"physics.backend: {err}") from err
    return preset, operator


GEOMETRY_OVERRIDES = ("image_size", "n_angles", "n_detectors")


def _with_geometry_overrides(preset: PhysicsPreset, cfg: DictConfig) -> PhysicsPreset:
    """``preset`` with the non-null ``physics.{image_size,n_angles,n_detectors}``; the
    geometry's own validation becomes a ``ConfigError`` naming the keys."""
    changes = {k: cfg.physics.get(k) for k in GEOMETRY_OVERRIDES if cfg.physics.get(k) is not None}
    if not changes:
        return preset
    geometry = preset.geometry
    fields = {f.name: getattr(geometry, f.name) for f in dataclasses.fields(geometry) if f.init}
    try:
        geometry = type(geometry)(**{**fields, **changes})
    except ValueError as err:
        keys = ", ".join(f"physics.{k}={v}" for k, v in changes.items())
        raise ConfigError(f"{keys} on the {preset.name} geometry: {err}") from err
    return dataclasses.replace(preset, geometry=geometry)


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if c is not None]


def _build(group: str, build: Any) -> Any:
    """``build()``, with a component's own argument checks reported as a ``ConfigError`` of
    the config group (``data: batch_size must be ...``)."""
    from hydra.errors import InstantiationException
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        return build()
    except (ValueError, TypeError, InstantiationException, MisconfigurationException) as err:
        if isinstance(err, _user_errors()):
            raise
        cause = err
        while isinstance(cause, InstantiationException) and cause.__cause__ is not None:
            cause = cause.__cause__
        message = str(cause).strip().splitlines()[0] if str(cause).strip() else repr(cause)
        raise ConfigError(f"{group}: {message} (check the {group}.* settings)") from err


def resolve_resume(cfg: DictConfig) -> Path | None:
    """The checkpoint that training continues from: ``ckpt_path``, or with ``resume=true``
    the ``last.ckpt`` of the newest run of ``task_name``, whose folder then becomes this run's
    ``paths.output_dir`` (the run goes on where it stopped). ``None``: a fresh run."""
    from learnct.reliability.atomic_checkpoint import remove_stale_temporaries
    from learnct.reliability.resume import find_resume_checkpoint

    if not cfg.get("train", True):
        return None
    if cfg.get("ckpt_path"):
        return Path(cfg.ckpt_path)
    if not cfg.get("resume", False):
        return None
    try:
        ckpt = find_resume_checkpoint(cfg.paths.log_dir, cfg.task_name, cfg.paths.output_dir)
    except FileNotFoundError as err:
        raise ConfigError(str(err)) from err
    run_dir = ckpt.parents[1]
    OmegaConf.update(cfg, "paths.output_dir", str(run_dir), merge=False)
    for stale in remove_stale_temporaries(ckpt.parent):
        print(f"resume: removed {stale}, left by a save that was interrupted")
    return ckpt


def batch_norm_note(model: Any, batch_size: int | None) -> str | None:
    """A warning when ``model`` has batch norm and trains at ``batch_size`` 1 (per device): it
    then normalises each image by its own statistics in training but by running averages at
    test, which fit only the training images' intensities (on 512^2 CT slices after ellipse
    training, FBP + U-Net lost 6 dB to a bias this way)."""
    import torch

    has_batch_norm = any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules()
    )
    if not has_batch_norm or batch_size != 1:
        return None
    return (
        f"warning: {type(model).__name__} has batch norm and trains at data.batch_size=1, so "
        "it learns per-image normalisation but tests with running averages; train with "
        "model.norm=instance (or group), or a batch of 4 or more. Its checkpoints can also "
        "be evaluated with model.norm=instance, which computes what batch norm did in training."
    )


def _metric(metrics: dict[str, float], name: str, idx: int, n_loaders: int) -> float | None:
    key = name if n_loaders == 1 else f"{name}/dataloader_idx_{idx}"
    value = metrics.get(key)
    return None if value is None else float(value)


@dataclasses.dataclass
class RunResult:
    """What a run produced: one results row per test set, and the value of
    ``cfg.optimized_metric`` after training/validation (the sweep objective)."""

    rows: list[dict[str, Any]]
    objective: float | None


def run(cfg: DictConfig) -> RunResult:
    """Train/evaluate/test as the config says."""
    os.environ.setdefault("WANDB_MODE", "offline")
    validate_config(cfg)
    # the code the run starts with (a commit made while it trains must not be credited)
    provenance = {"commit": git_commit(), **library_versions()}
    resume = resolve_resume(cfg)

    import lightning as L

    from learnct.methods.checkpoints import check_architecture, check_checkpoint, load_weights
    from learnct.reliability.atomic_checkpoint import AtomicCheckpointIO
    from learnct.reliability.nonfinite import NonFiniteGuard
    from learnct.reliability.testset_hash import TestSetHash
    from learnct.reliability.wandb_fallback import start_wandb_or_fallback

    L.seed_everything(cfg.seed, workers=True)
    preset, operator = build_physics(cfg)
    # partials, so that the preset and the operator are passed as objects, not configs
    datamodule = _build(
        "data",
        lambda: hydra.utils.instantiate(cfg.data, _partial_=True, _convert_="all")(
            physics=preset, operator=operator
        ),
    )
    model = _build(
        "model",
        lambda: hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(
            operator=operator
        ),
    )
    trainable = getattr(model, "trainable", True)
    # build (and, for file sources, check) the data sets now, not inside the Trainer
    stages = ["validate"] if not trainable else ["fit"] if cfg.get("train", True) else []
    stages += ["test"] if cfg.get("test", True) else []
    for stage in stages:
        _build("data", functools.partial(datamodule.setup, stage))
    if trainable and cfg.get("train", True):
        note = batch_norm_note(model, getattr(datamodule, "batch_size", None))
        if note:
            print(note, file=sys.stderr)
    if cfg.get("init_weights") and cfg.get("train", True):
        if not trainable:
            raise ConfigError(
                f"init_weights: {type(model).__name__} has no weights to start from (unset it)"
            )
        try:
            step = load_weights(model, cfg.init_weights, operator.geometry)
        except ValueError as err:
            raise ConfigError(f"init_weights: {err}") from err
        print(f"starting from the weights of {cfg.init_weights} (saved at step {step})")
    if resume is not None and trainable:
        try:
            state = check_checkpoint(resume, type(model).__name__, operator.geometry)
            check_architecture(model, state, resume)
        except ValueError as err:
            key = "ckpt_path" if cfg.get("ckpt_path") else "resume"
            raise ConfigError(f"{key}: {err}") from err
        print(
            f"resuming from {resume} (step {state.get('global_step')}); run folder: "
            f"{cfg.paths.output_dir}"
        )
        del state
    loggers = start_wandb_or_fallback(
        _instantiate_all(cfg.get("logger")), rebuild=lambda: _instantiate_all(cfg.get("logger"))
    )
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if not trainable:
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ModelCheckpoint)]
    elif cfg.get("max_nonfinite_steps"):
        callbacks.append(NonFiniteGuard(cfg.max_nonfinite_steps))
    test_hash = TestSetHash(list(datamodule.sources["test"]))
    callbacks.append(test_hash)
    trainer: L.Trainer = _build(
        "trainer",
        lambda: hydra.utils.instantiate(
            cfg.trainer,
            logger=loggers or False,
            callbacks=callbacks,
            plugins=[AtomicCheckpointIO()],
        ),
    )
    flat = {k: v for k, v in _flatten(OmegaConf.to_container(cfg, resolve=True)).items()}
    for logger in loggers:
        logger.log_hyperparams(flat)

    best = cfg.get("ckpt_path")
    if trainable and not cfg.get("train", True):
        if not best:
            raise ConfigError(
                f"evaluating {type(model).__name__} needs a checkpoint: set ckpt_path "
                "(make eval EXP=<name> CKPT=path/to/file.ckpt)"
            )
        try:
            check_architecture(
                model, check_checkpoint(best, type(model).__name__, operator.geometry), best
            )
        except ValueError as err:
            raise ConfigError(f"ckpt_path: {err}") from err
    if trainable and cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=resume)
        checkpoint = trainer.checkpoint_callback
        best = (checkpoint.best_model_path or None) if checkpoint is not None else None
    elif not getattr(model, "trainable", True):
        print(f"{type(model).__name__} has nothing to train: evaluating it instead.")
        trainer.validate(model, datamodule=datamodule)

    objective = trainer.callback_metrics.get(cfg.get("optimized_metric") or "")
    objective = None if objective is None else float(objective)
    rows: list[dict[str, Any]] = []
    if cfg.get("test", True):
        tester = _single_device_tester(cfg, trainer, loggers, [test_hash])
        if tester is None:  # a DDP rank other than 0: rank 0 tests
            return RunResult(rows=[], objective=objective)
        results = tester.test(model, datamodule=datamodule, ckpt_path=best)
        metrics: dict[str, float] = {}
        for r in results:
            metrics.update(r)
        test_sets = datamodule.sources["test"]
        n = len(test_sets)
        device = str(trainer.strategy.root_device)
        for idx, test_set in enumerate(test_sets):
            rows.append(
                {
                    "method": type(model).__name__,
                    "physics": preset.name,
                    "test_set": test_set,
                    "n_images": len(datamodule.datasets["test"][idx]),
                    "psnr": _metric(metrics, "test/psnr", idx, n),
                    "ssim": _metric(metrics, "test/ssim", idx, n),
                    "ms_per_slice": _metric(metrics, "test/ms_per_slice", idx, n),
                    "fbp_psnr": _metric(metrics, "test/fbp_psnr", idx, n),
                    "fbp_ssim": _metric(metrics, "test/fbp_ssim", idx, n),
                    "device": device,
                    "run_dir": cfg.paths.output_dir,
                    "test_hash": test_hash.hashes.get(idx),
                    **provenance,
                }
            )
        _write_results(Path(cfg.paths.output_dir), rows, cfg, provenance)
        from learnct.evaluation import write_run_figure

        figure = write_run_figure(model, datamodule, Path(cfg.paths.output_dir))
        _log_results(loggers, rows, figure)
        _print_rows(rows)
        print(f"results: {Path(cfg.paths.output_dir) / 'results.csv'}; figure: {figure}")
    _finish_wandb()
    return RunResult(rows=rows, objective=objective)


def _log_results(loggers: list[Any], rows: list[dict[str, Any]], figure: Path) -> None:
    """Put the results table (``test/results``) and the comparison figure
    (``test/comparison``) into the W&B run, beside the metrics and validation panels."""
    import lightning as L

    for logger in loggers:
        if isinstance(logger, L.pytorch.loggers.WandbLogger):
            data = [[row[c] for c in RESULT_FIELDS] for row in rows]
            logger.log_table(key="test/results", columns=list(RESULT_FIELDS), data=data)
            logger.log_image(key="test/comparison", images=[str(figure)])


def _single_device_tester(
    cfg: DictConfig, trainer: L.Trainer, loggers: list[Any], callbacks: list[Any]
):
    """The trainer that tests: ``trainer`` itself on one device in ``cfg.test_precision``
    (null: any); else a one-device trainer in that precision (after DDP training: on global
    rank 0, None on the other ranks, so that every fixed test image is evaluated exactly once;
    a DistributedSampler would pad and repeat). Its CSV metrics go to ``csv/test`` (a spawned
    rank 0 wrote the training CSV); it gets ``callbacks`` (the test-set hash)."""
    import lightning as L

    precision = cfg.get("test_precision")
    same = precision is None or _precision_name(precision) == _precision_name(trainer.precision)
    if trainer.world_size == 1 and same:
        return trainer
    if trainer.global_rank != 0:
        return None
    test_loggers = [
        L.pytorch.loggers.CSVLogger(lg.save_dir, name=lg.name, version="test")
        if isinstance(lg, L.pytorch.loggers.CSVLogger)
        else lg
        for lg in loggers
    ]
    return hydra.utils.instantiate(
        cfg.trainer,
        devices=1,
        num_nodes=1,
        strategy="auto",
        logger=test_loggers or False,
        callbacks=callbacks,
        **({} if precision is None else {"precision": precision}),
    )


def _precision_name(precision: Any) -> str:
    """Lightning's canonical name of a precision setting (``32`` and ``"32"``: ``32-true``)."""
    aliases = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}
    return aliases.get(str(precision), str(precision))


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): tree}


def _write_results(
    folder: Path, rows: list[dict[str, Any]], cfg: DictConfig, provenance: dict[str, str]
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    config = OmegaConf.to_container(cfg, resolve=True)
    (folder / "config.json").write_text(json.dumps({**config, "provenance": provenance}, indent=1))


def _print_rows(rows: list[dict[str, Any]]) -> None:
    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    print("\n| method | physics | test set | PSNR (dB) | SSIM | ms/slice | FBP PSNR | FBP SSIM |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['method']} | {r['physics']} | {r['test_set']} | {fmt(r['psnr'], '.2f')} | "
            f"{fmt(r['ssim'], '.3f')} | {fmt(r['ms_per_slice'], '.1f')} | "
            f"{fmt(r['fbp_psnr'], '.2f')} | {fmt(r['fbp_ssim'], '.3f')} |"
        )


def _finish_wandb() -> None:
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


def run_reporting_errors(cfg: DictConfig) -> float | None:
    """``run(cfg).objective`` for the console entry points: a user mistake (``ConfigError``,
    ``DataError``) or a run stopped by non-finite steps prints one line and exits (status 2
    and 1); in a sweep, any failing job is recorded in ``<sweep dir>/failures.jsonl`` and
    returns ``None`` (Optuna: a failed trial) so that the other jobs go on."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    hydra_cfg = HydraConfig.get() if HydraConfig.initialized() else None
    multirun = hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN
    if not multirun:  # a config mistake fails before torch and Lightning load (~1 s, not ~15 s)
        try:
            validate_config(cfg)
        except ConfigError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)

    import torch

    from learnct.reliability.nonfinite import NonFiniteTrainingError
    from learnct.reliability.sweep_failures import record_failure

    torch.set_float32_matmul_precision("high")
    try:
        return run(cfg).objective
    except Exception as err:
        _finish_wandb()
        if multirun:
            path = record_failure(hydra_cfg.sweep.dir, cfg, err)
            print(
                f"sweep job {hydra_cfg.job.num} failed ({type(err).__name__}: {err}); "
                f"recorded in {path}; the sweep goes on",
                file=sys.stderr,
                flush=True,
            )
            return None
        if isinstance(err, _user_errors()):
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(2)
        if isinstance(err, NonFiniteTrainingError):
            print(f"error: {err}", file=sys.stderr, flush=True)
            sys.exit(1)
        raise


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    return run_reporting_errors(cfg)


if __name__ == "__main__":
    main()
