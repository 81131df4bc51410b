"""The run: build its parts from the config, fit (or, for FBP and TV, validate), then test on
the fixed test sets and write the results (:mod:`learnct.run.results`).

Reliability (docs/reliability.md): the config is checked before anything is built; every
checkpoint is checked (a local learnct checkpoint of this method, loaded weights-only) before
anything loads it, and Lightning loads them weights-only too; ``resume=true`` continues the
newest run of the task in its own folder, ``sitting_steps`` runs a schedule in sittings from
a checkpoint in the repository (:mod:`learnct.run.sittings`); checkpoints and results are
written atomically; non-finite steps are skipped (``max_nonfinite_steps`` in a row stop the
run); W&B falls back to offline; every results row carries the test-set hash, the git
commit and the library versions. After multi-device training, rank 0 tests on one device.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from learnct.run.build import (
    build_component,
    build_datamodule,
    build_method,
    build_physics,
    build_trainer,
    instantiate_all,
    trainer_config,
    user_errors,
)
from learnct.run.checkpoint_settings import adopt_checkpoint_settings, resolve_checkpoint_names
from learnct.run.config_checks import (
    ConfigError,
    check_model_attenuation,
    in_sittings,
    planned_steps,
    validate_config,
)
from learnct.run.identity import RunIdentity, new_identity, read_identity, write_identity
from learnct.run.provenance import git_commit, library_versions
from learnct.run.results import (
    RESULT_FIELDS,
    TEST_METRICS,
    TESTED_KEY,
    file_digest,
    tested_record,
    weights_folder_source,
    write_results,
)
from learnct.run.resume import check_time_left, resolve_resume

if TYPE_CHECKING:
    import lightning as L

    from learnct.physics import RayTransform

__all__ = ["IN_RUN", "RunResult", "batch_norm_note", "finish_wandb", "run", "single_device_tester"]


#: The attribute a user error (``ConfigError``, ``DataError``) gets where it was raised once
#: training, validation or testing began: a run that failed, whose folder and job log are
#: kept, not a refused command (:func:`learnct.run.cli.remove_refused_run_folder`).
IN_RUN = "raised_in_run"


@dataclasses.dataclass
class RunResult:
    """What a run produced: one results row per test set, and the value of
    ``cfg.optimized_metric`` after training/validation (the sweep objective)."""

    rows: list[dict[str, Any]]
    objective: float | None


def run(cfg: DictConfig, *, checked: bool = False) -> RunResult:
    """Train/evaluate/test as the config says. ``checked``: the caller has already resolved
    the checkpoint names and validated ``cfg`` (the command line does, before torch loads).
    However it ends, an offline W&B fallback of this run is undone (``restore_wandb_mode``)."""
    from learnct.run.wandb_fallback import restore_wandb_mode

    try:
        return _run(cfg, checked)
    finally:
        restore_wandb_mode()


def _run(cfg: DictConfig, checked: bool) -> RunResult:
    os.environ.setdefault("WANDB_MODE", "offline")
    if not checked:
        for note in resolve_checkpoint_names(cfg):
            print(note)
        validate_config(cfg)

    import lightning as L

    from learnct.methods.checkpoints import reading_checkpoints_once
    from learnct.run.testset_hash import TestSetHash
    from learnct.run.weights_source import source_record

    # the start reads each checkpoint file once (settings, sitting, identity, checks, weights)
    with reading_checkpoints_once():
        resume, identity, provenance = _begin(cfg)
        L.seed_everything(cfg.seed, workers=True)
        preset, operator = build_physics(cfg)
        check_model_attenuation(cfg, preset.mu, preset.name)
        datamodule = build_datamodule(cfg, preset, operator)
        model = build_method(cfg, operator)
        to_test = _check_checkpoints(cfg, model, operator, resume, identity)
        _prepare(cfg, model, datamodule, operator, resume)
        if getattr(model, "trainable", True) and cfg.get("train", True):
            model.weights_source = source_record(cfg, identity, provenance["commit"], resume)
    loggers = _start_loggers(cfg)
    test_hash = TestSetHash(list(datamodule.sources["test"]))
    trainer = build_trainer(cfg, loggers, [*_callbacks(cfg, model, identity), test_hash])
    flat = _flatten(OmegaConf.to_container(cfg, resolve=True))
    for logger in loggers:
        logger.log_hyperparams(flat)

    try:
        trained, paused = _fit(cfg, trainer, model, datamodule, resume, identity)
        objective = _objective(cfg, trainer)
        rows: list[dict[str, Any]] = []
        if cfg.get("test", True) and not paused:
            tester = single_device_tester(cfg, trainer, loggers, [test_hash])
            if tester is None:  # a DDP rank other than 0: rank 0 tests
                return RunResult(rows=[], objective=objective)
            checkpoint = trained or to_test
            rows = _test(cfg, tester, model, datamodule, checkpoint, test_hash, loggers, provenance)
    except user_errors() as err:
        setattr(err, IN_RUN, True)  # the errors' classes do not declare it
        raise
    finish_wandb()
    return RunResult(rows=rows, objective=objective)


def _begin(cfg: DictConfig) -> tuple[Path | None, RunIdentity, dict[str, Any]]:
    """Before anything is built (the config checked): adopt a checkpoint's architecture, note
    the code's provenance, find the checkpoint to resume from, apply ``extras`` and write the
    run's identity. Returns (resume checkpoint, identity, provenance)."""
    from learnct.run.extras import apply_extras

    for note in adopt_checkpoint_settings(cfg):  # the checkpoint's architecture, not defaults
        print(f"checkpoint settings: {note}")
    # the code the run starts with (a commit made while it trains must not be credited)
    provenance = {"commit": git_commit(), **library_versions()}
    resume = resolve_resume(cfg)
    apply_extras(cfg)  # extras.ignore_warnings, print_config
    return resume, _run_identity(cfg, resume), provenance


def _start_loggers(cfg: DictConfig) -> list[Any]:
    """The configured loggers, started (W&B falls back to offline when it cannot start)."""
    from learnct.run.wandb_fallback import start_wandb_or_fallback

    build = functools.partial(build_component, "logger", lambda: instantiate_all(cfg.get("logger")))
    return start_wandb_or_fallback(build(), rebuild=build)


def _callbacks(cfg: DictConfig, model: Any, identity: RunIdentity) -> list[Any]:
    """The configured callbacks, and for a trainable method the run's own: the identity
    stamp, the end of a sitting, the non-finite guard and an Optuna trial's pruning."""
    import lightning as L

    from learnct.run.identity_stamp import RunIdentityStamp
    from learnct.run.nonfinite import NonFiniteGuard
    from learnct.run.sittings import SittingEnd, sitting_checkpoint
    from learnct.run.sweep_pruning import trial_pruning

    callbacks = instantiate_all(cfg.get("callbacks"))
    if not getattr(model, "trainable", True):
        return [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ModelCheckpoint)]
    callbacks.append(RunIdentityStamp(identity))
    if in_sittings(cfg):
        steps, minutes = cfg.get("sitting_steps"), cfg.get("sitting_minutes")
        save = cfg.get("sitting_save_minutes")
        callbacks.append(SittingEnd(steps, sitting_checkpoint(cfg), minutes, save))
    if cfg.get("max_nonfinite_steps"):
        callbacks.append(NonFiniteGuard(cfg.max_nonfinite_steps))
    pruning = trial_pruning(cfg)  # a job of an Optuna sweep with a pruner
    if pruning is not None:
        callbacks.append(pruning)
    return callbacks


def _fit(
    cfg: DictConfig,
    trainer: L.Trainer,
    model: Any,
    datamodule: Any,
    resume: Path | None,
    identity: RunIdentity,
) -> tuple[str | None, bool]:
    """Train a trainable method (FBP/TV: validate, to show the validation scores). Returns
    the checkpoint to test (the run's best, or a finished sittings schedule's
    ``checkpoints/final.ckpt``; ``None``: the weights in memory, or nothing was trained) and
    whether a sitting ended before its schedule did (nothing to test yet). With ``train``
    false (``make eval``) nothing is trained or validated."""
    if not cfg.get("train", True):
        return None, False
    if not getattr(model, "trainable", True):
        print(f"{type(model).__name__} has nothing to train: evaluating it instead.")
        for scores in trainer.validate(model, datamodule=datamodule, verbose=False):
            print("validation: " + ", ".join(f"{k} {v:.4g}" for k, v in scores.items()))
        return None, False
    # the steps of the weights are known again when training ends (on_train_end) in this
    # process; in spawned or forked workers they stay unknown (their module attributes do
    # not come back), unless the test loads a checkpoint, which records them
    from learnct.methods.checkpoints import recorded_training

    model.trained_steps = None
    model.trained_on = recorded_training(model.weights_source)  # known here already
    # Lightning loads only checked paths (or this run's own best checkpoint), weights-only
    trainer.fit(model, datamodule=datamodule, ckpt_path=resume, weights_only=True)
    _mark_if_finished(cfg, trainer, identity)
    if in_sittings(cfg):  # the schedule's final weights, once it has ended
        if identity.get("finished"):
            return _save_final_weights(cfg, trainer), False
        print(
            f"sitting ended at step {trainer.global_step} of {cfg.trainer.max_steps}: "
            "run the same command again to continue (tested when the schedule ends)"
        )
        return None, True
    checkpoint = trainer.checkpoint_callback
    return (checkpoint.best_model_path or None) if checkpoint is not None else None, False


def _save_final_weights(cfg: DictConfig, trainer: L.Trainer) -> str:
    """A finished schedule's final weights (the last sitting's best checkpoint is that
    sitting's only), saved weights-only as ``checkpoints/final.ckpt``: what its test loads
    and the report finds. Returns the path."""
    path = Path(cfg.paths.output_dir) / "checkpoints" / "final.ckpt"
    trainer.save_checkpoint(path, weights_only=True)
    return str(path)


def _test(
    cfg: DictConfig,
    tester: L.Trainer,
    model: Any,
    datamodule: Any,
    checkpoint: str | Path | None,
    test_hash: Any,
    loggers: list[Any],
    provenance: dict[str, Any],
) -> list[dict[str, Any]]:
    """Test ``checkpoint`` (``None``: the weights in memory) on every fixed test set; write
    the results rows, the run's figure, log both and print the table. Returns the rows."""
    from learnct.evaluation import write_run_figure
    from learnct.run.nonfinite import check_finite_results

    metrics: dict[str, float] = {}
    # verbose=False: the table below, not Lightning's per-dataloader one
    for result in tester.test(
        model, datamodule=datamodule, ckpt_path=checkpoint, weights_only=True, verbose=False
    ):
        metrics.update(result)
    common = {
        "method": model.result_name,
        "physics": datamodule.physics.name,
        "train_steps": model.trained_steps if getattr(model, "trainable", True) else None,
        "trained_on": _trained_on(model, checkpoint),
        "weights_hash": file_digest(checkpoint) if checkpoint else None,
        "device": str(tester.strategy.root_device),
        "run_dir": cfg.paths.output_dir,
        **provenance,
    }
    rows = _result_rows(metrics, datamodule, test_hash.hashes, common)
    check_finite_results(rows, TEST_METRICS)
    folder = Path(cfg.paths.output_dir)
    config = {
        **OmegaConf.to_container(cfg, resolve=True),
        "provenance": provenance,
        TESTED_KEY: tested_record(folder, checkpoint),
    }
    results = write_results(folder, rows, config)
    figure = write_run_figure(model, datamodule, folder)
    _log_results(loggers, rows, figure)
    _print_rows(rows)
    print(f"results: {results}; figure: {figure}")
    return rows


def _objective(cfg: DictConfig, trainer: L.Trainer) -> float | None:
    """The value of ``cfg.optimized_metric`` after training/validation (``None``: not logged)."""
    objective = trainer.callback_metrics.get(cfg.get("optimized_metric") or "")
    return None if objective is None else float(objective)


def _run_identity(cfg: DictConfig, resume: Path | None) -> RunIdentity:
    """The identity of this run (:mod:`learnct.run.identity`): the resumed run's own, a
    sitting's own under its schedule's run id, else a new one; written to the run folder's
    ``run.json`` now, before anything is built."""
    folder = Path(cfg.paths.output_dir)
    if in_sittings(cfg) and cfg.get("train", True):
        from learnct.run.sittings import sitting_identity

        identity = sitting_identity(cfg, resume)
        write_identity(folder, identity)
        return identity
    identity = read_identity(folder) if resume is not None and cfg.get("resume") else None
    if identity is None:
        identity = new_identity(cfg)
        write_identity(folder, identity)
    return identity


def _mark_if_finished(cfg: DictConfig, trainer: L.Trainer, identity: RunIdentity) -> None:
    """Record in ``run.json`` that training reached its planned end (``trainer.max_steps``;
    a run stopped early by ``max_time`` stays resumable)."""
    planned = planned_steps(cfg.trainer.get("max_steps", -1))
    if planned is None or trainer.global_step >= planned:
        identity["finished"] = datetime.datetime.now().isoformat(timespec="seconds")
        write_identity(Path(cfg.paths.output_dir), identity)


def _check_checkpoints(
    cfg: DictConfig,
    model: Any,
    operator: RayTransform,
    resume: Path | None,
    identity: RunIdentity,
) -> Path | None:
    """Check every checkpoint the run will load before anything loads one. FBP and TV have no
    weights: ``ckpt_path`` and ``init_weights`` are refused. A learned method's checkpoint to
    resume from, or to test (``train=false``: ``ckpt_path``, required), must be a local learnct
    checkpoint of its method, geometry and architecture (``check_checkpoint``: weights-only,
    never a URL); ``init_weights`` is checked as it loads (``_prepare``). Returns the
    checkpoint to test, if any. A ``resume`` checkpoint must carry this run's id."""
    name = type(model).__name__
    if not getattr(model, "trainable", True):
        if cfg.get("ckpt_path"):
            raise ConfigError(
                f"ckpt_path: {name} has no weights to load (unset it: make eval EXP=<fbp|tv> "
                "needs no CKPT)"
            )
        if cfg.get("init_weights") and cfg.get("train", True):
            raise ConfigError(f"init_weights: {name} has no weights to start from (unset it)")
        return None
    if cfg.get("train", True):
        if resume is not None:
            key = "the sittings checkpoint" if in_sittings(cfg) else "resume"
            state = _checked_checkpoint(key, resume, model, operator)
            if key == "resume":
                _check_run(state, resume, identity)
                check_time_left(state, cfg.trainer.get("max_time"))
            print(
                f"resuming from {resume} (step {state.get('global_step')}); run folder: "
                f"{cfg.paths.output_dir}"
            )
        return None
    if not cfg.get("ckpt_path"):
        raise ConfigError(
            f"evaluating {name} needs a checkpoint: set ckpt_path (make eval EXP=<name> "
            "CKPT=path/to/file.ckpt, or a committed model's name: CKPT=lpd-fan_lowdose)"
        )
    _checked_checkpoint("ckpt_path", cfg.ckpt_path, model, operator)
    return Path(cfg.ckpt_path)


def _checked_checkpoint(
    key: str, path: str | Path, model: Any, operator: RayTransform
) -> dict[str, Any]:
    """The checkpoint at ``path`` (config key ``key``) after ``check_checkpoint`` and
    ``check_architecture``; a ``ConfigError`` naming ``key`` if it does not fit."""
    from learnct.methods.checkpoints import check_architecture, check_checkpoint

    try:
        state = check_checkpoint(path, type(model).__name__, operator.geometry)
        check_architecture(model, state, path)
    except ValueError as err:
        raise ConfigError(f"{key}: {err}") from err
    return state


def _check_run(state: dict[str, Any], path: Path, identity: RunIdentity) -> None:
    """A checkpoint stamped with a run id must be of the run it continues."""
    from learnct.methods.checkpoints import run_stamp

    stamp = run_stamp(state)
    if stamp is not None and stamp["id"] != identity.id:
        raise ConfigError(
            f"resume: checkpoint {path} belongs to run {stamp['id']}, not to the run "
            f"{identity.id} of {path.parents[1]} (it was copied or moved between run folders)"
        )


def _prepare(
    cfg: DictConfig, model: Any, datamodule: Any, operator: RayTransform, resume: Path | None
) -> None:
    """Set up the data (file sources are checked now, not inside the Trainer), warn about
    batch norm at batch size 1 and load ``init_weights`` (checked as it loads) unless a later
    sitting continues its checkpoint (``resume``: it holds the weights the first sitting
    started from ``init_weights``)."""
    from learnct.methods.checkpoints import load_weights

    trainable = getattr(model, "trainable", True)
    training = trainable and cfg.get("train", True)
    stages = ["fit" if trainable else "validate"] if cfg.get("train", True) else []
    stages += ["test"] if cfg.get("test", True) else []
    for stage in stages:
        build_component("data", functools.partial(datamodule.setup, stage))
    if training:
        note = batch_norm_note(model, getattr(datamodule, "batch_size", None))
        if note:
            print(note, file=sys.stderr)
    if cfg.get("init_weights") and training and resume is not None:
        _check_started_from(cfg.init_weights, resume)
        print(f"init_weights={cfg.init_weights} started this run; continuing {resume}")
    elif cfg.get("init_weights") and training:
        try:
            steps = load_weights(model, cfg.init_weights, operator.geometry)
        except ValueError as err:
            raise ConfigError(f"init_weights: {err}") from err
        known = "not recorded" if steps is None else steps
        print(f"starting from the weights of {cfg.init_weights} (steps trained: {known})")


def _trained_on(model: Any, checkpoint: str | Path | None) -> str | None:
    """The data the tested weights were last trained on: for a checkpoint of a committed
    weights folder, as the folder's ``config.json`` says (source and dose range:
    :func:`~learnct.run.results.weights_folder_source`; checkpoints saved before their record
    named the range say the source alone), else as the checkpoint records it; ``None`` for
    methods with nothing to train, or where unknown."""
    if not getattr(model, "trainable", True):
        return None
    committed = weights_folder_source(Path(checkpoint).parent) if checkpoint else None
    return committed or model.trained_on


def _check_started_from(init_weights: str, resume: Path) -> None:
    """``ConfigError`` unless the run continued from ``resume`` started from weights of as
    many trained steps as ``init_weights`` has (``init_weights`` is not in a run's identity, so
    ``resume=true`` could otherwise pick a run of the task that started elsewhere)."""
    from learnct.methods.checkpoints import read_checkpoint, steps_before, trained_steps

    source = trained_steps(read_checkpoint(init_weights))
    started = steps_before(read_checkpoint(resume))
    if source != started:
        raise ConfigError(
            f"init_weights={init_weights} with resume: {resume} did not start from those "
            f"weights (it started from weights of {started} steps, init_weights has {source}): "
            "give resume=<the run folder that started from them>, or drop init_weights"
        )


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


def single_device_tester(
    cfg: DictConfig, trainer: L.Trainer, loggers: list[Any], callbacks: list[Any]
) -> L.Trainer | None:
    """The trainer that tests: ``trainer`` itself on one device in ``cfg.test_precision``
    (null: any); else a one-device trainer in that precision (after DDP training: on global
    rank 0, None on the other ranks, so that every fixed test image is evaluated exactly once;
    a DistributedSampler would pad and repeat). Its CSV metrics go to ``csv/test`` (a spawned
    rank 0 wrote the training CSV); it gets ``callbacks`` (the test-set hash), and a progress
    bar (Lightning's) only if ``trainer`` has one."""
    import hydra
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
    bar = trainer.progress_bar_callback is not None
    return hydra.utils.instantiate(
        trainer_config(cfg),
        devices=1,
        num_nodes=1,
        strategy="auto",
        logger=test_loggers or False,
        callbacks=callbacks,
        **({} if precision is None else {"precision": precision}),
        **({} if "enable_progress_bar" in cfg.trainer else {"enable_progress_bar": bar}),
    )


def _precision_name(precision: Any) -> str:
    """Lightning's canonical name of a precision setting (``32`` and ``"32"``: ``32-true``)."""
    aliases = {"32": "32-true", "64": "64-true", "16": "16-mixed", "bf16": "bf16-mixed"}
    return aliases.get(str(precision), str(precision))


def _result_rows(
    metrics: dict[str, float], datamodule: Any, hashes: dict[int, str], common: dict[str, Any]
) -> list[dict[str, Any]]:
    """One results row per test set from the test pass's ``metrics`` (logged as
    ``test/<test set>/<metric>``, :mod:`learnct.methods.base`)."""

    def metric(test_set: str, name: str) -> float | None:
        value = metrics.get(f"test/{test_set}/{name}")
        return None if value is None else float(value)

    return [
        {
            **common,
            "test_set": test_set,
            "n_images": len(datamodule.datasets["test"][idx]),
            **{key: metric(test_set, key) for key in TEST_METRICS},
            "test_hash": hashes.get(idx),
        }
        for idx, test_set in enumerate(datamodule.sources["test"])
    ]


def _log_results(loggers: list[Any], rows: list[dict[str, Any]], figure: Path) -> None:
    """Put the results table (``test/results``) and the comparison figure
    (``test/comparison``) into the W&B run, beside the metrics and validation panels."""
    import lightning as L

    for logger in loggers:
        if isinstance(logger, L.pytorch.loggers.WandbLogger):
            data = [[row.get(c) for c in RESULT_FIELDS] for row in rows]
            logger.log_table(key="test/results", columns=list(RESULT_FIELDS), data=data)
            logger.log_image(key="test/comparison", images=[str(figure)])


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): tree}


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


def finish_wandb() -> None:
    """End the W&B run of this process, if one is open (each sweep job ends its own)."""
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()
