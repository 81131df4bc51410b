"""``learnct-train`` / ``make train EXP=<name>``: train (or, for FBP and TV, evaluate) one method
from a Hydra config, then test it on the fixed test set and print a results row.

The physics is built once here (preset -> geometry -> ``RayTransform``) and injected into both
the DataModule (simulation) and the method (reconstruction), so the two can never disagree.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from learnct.methods.checkpoints import check_checkpoint
from learnct.physics import PRESETS, PhysicsPreset, RayTransform
from learnct.run_grouping import register_resolvers

__all__ = ["CONFIG_DIR", "ConfigError", "RunResult", "build_physics", "main", "run"]

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
)


class ConfigError(ValueError):
    """A user mistake in the composed config: names the key, the value and what is allowed."""


def _choice(cfg: DictConfig, key: str, allowed: list[str]) -> str:
    value = OmegaConf.select(cfg, key)
    if value not in allowed:
        raise ConfigError(f"{key}={value!r} is not valid: choose one of {sorted(allowed)}")
    return value


def build_physics(cfg: DictConfig) -> tuple[PhysicsPreset, RayTransform]:
    """The run's physics preset (with any ``physics.photons`` override) and its operator."""
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
    try:
        operator = RayTransform(preset.geometry, backend=cfg.physics.get("backend", "auto"))
    except ValueError as err:
        raise ConfigError(f"physics.backend: {err}") from err
    return preset, operator


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=CONFIG_DIR.parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _instantiate_all(group: DictConfig | None) -> list[Any]:
    if not group:
        return []
    return [hydra.utils.instantiate(c) for c in group.values() if c is not None]


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
    L.seed_everything(cfg.seed, workers=True)
    preset, operator = build_physics(cfg)
    # partials, so that the preset and the operator are passed as objects, not configs
    datamodule = hydra.utils.instantiate(cfg.data, _partial_=True, _convert_="all")(
        physics=preset, operator=operator
    )
    model = hydra.utils.instantiate(cfg.model, _partial_=True, _convert_="all")(operator=operator)
    loggers = _instantiate_all(cfg.get("logger"))
    callbacks = _instantiate_all(cfg.get("callbacks"))
    if not getattr(model, "trainable", True):
        callbacks = [c for c in callbacks if not isinstance(c, L.pytorch.callbacks.ModelCheckpoint)]
    trainer: L.Trainer = hydra.utils.instantiate(
        cfg.trainer, logger=loggers or False, callbacks=callbacks
    )
    flat = {k: v for k, v in _flatten(OmegaConf.to_container(cfg, resolve=True)).items()}
    for logger in loggers:
        logger.log_hyperparams(flat)

    best = cfg.get("ckpt_path")
    trainable = getattr(model, "trainable", True)
    if trainable and not cfg.get("train", True):
        if not best:
            raise ConfigError(
                f"evaluating {type(model).__name__} needs a checkpoint: set ckpt_path "
                "(make eval EXP=<name> CKPT=path/to/file.ckpt)"
            )
        try:
            check_checkpoint(best, type(model).__name__, operator.geometry)
        except ValueError as err:
            raise ConfigError(f"ckpt_path: {err}") from err
    if trainable and cfg.get("train", True):
        trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        checkpoint = trainer.checkpoint_callback
        best = (checkpoint.best_model_path or None) if checkpoint is not None else None
    elif not getattr(model, "trainable", True):
        print(f"{type(model).__name__} has nothing to train: evaluating it instead.")
        trainer.validate(model, datamodule=datamodule)

    objective = trainer.callback_metrics.get(cfg.get("optimized_metric") or "")
    objective = None if objective is None else float(objective)
    rows: list[dict[str, Any]] = []
    if cfg.get("test", True):
        tester = _single_device_tester(cfg, trainer, loggers)
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
                    "commit": _git_commit(),
                    "run_dir": cfg.paths.output_dir,
                }
            )
        _write_results(Path(cfg.paths.output_dir), rows, cfg)
        figure = write_comparison_figure(model, datamodule, Path(cfg.paths.output_dir))
        _log_results(loggers, rows, figure)
        _print_rows(rows)
        print(f"results: {Path(cfg.paths.output_dir) / 'results.csv'}; figure: {figure}")
    _finish_wandb()
    return RunResult(rows=rows, objective=objective)


def _log_results(loggers: list[Any], rows: list[dict[str, Any]], figure: Path) -> None:
    """Put the results table (``test/results``) and the comparison figure
    (``test/comparison``) into the W&B run, beside the metrics and validation panels."""
    for logger in loggers:
        if isinstance(logger, L.pytorch.loggers.WandbLogger):
            data = [[row[c] for c in RESULT_FIELDS] for row in rows]
            logger.log_table(key="test/results", columns=list(RESULT_FIELDS), data=data)
            logger.log_image(key="test/comparison", images=[str(figure)])


def _single_device_tester(cfg: DictConfig, trainer: L.Trainer, loggers: list[Any]):
    """The trainer that tests: ``trainer`` itself on one device; after multi-device (DDP)
    training, a one-device trainer on global rank 0 (None on the other ranks), so that every
    fixed test image is evaluated exactly once (a DistributedSampler would pad and repeat).
    Its CSV metrics go to ``csv/test`` (a spawned rank 0 wrote the training CSV)."""
    if trainer.world_size == 1:
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
        callbacks=[],
    )


def write_comparison_figure(model: Any, datamodule: Any, folder: Path) -> Path:
    """``comparison.png``: the first slice of each test set as ground truth, FBP, the method's
    reconstruction and its error, with PSNR/SSIM in the titles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from learnct.methods.base import per_image_psnr, per_image_ssim

    loaders = datamodule.test_dataloader()
    loaders = loaders if isinstance(loaders, list) else [loaders]
    device = model.device
    fig, axes = plt.subplots(len(loaders), 4, figsize=(13, 3.4 * len(loaders)), squeeze=False)
    for row, (loader, name) in enumerate(zip(loaders, datamodule.sources["test"], strict=True)):
        raw = next(iter(loader))
        raw = {k: (v[:1].to(device) if torch.is_tensor(v) else v) for k, v in raw.items()}
        batch = datamodule.simulate(raw)
        gt = batch.image
        recon = model.reconstruct(batch.sinogram)
        with torch.no_grad():
            fbp_recon = model.fbp(batch.sinogram)
        lo, hi = float(gt.min()), float(gt.max())
        panels = [("ground truth", gt), ("FBP", fbp_recon), (type(model).__name__, recon)]
        for col, (title, img) in enumerate(panels):
            ax = axes[row, col]
            ax.imshow(img[0, 0].float().cpu(), cmap="gray", vmin=lo, vmax=hi)
            if col > 0:
                p, s = per_image_psnr(img, gt).item(), per_image_ssim(img, gt).item()
                title = f"{title}\n{p:.2f} dB, SSIM {s:.3f}"
            ax.set_title(f"{name}: {title}" if col == 0 else title, fontsize=9)
        err = (recon - gt)[0, 0].float().cpu()
        span = max(float(err.abs().max()), 1e-6)
        axes[row, 3].imshow(err, cmap="RdBu_r", vmin=-span, vmax=span)
        axes[row, 3].set_title("error (method - truth)", fontsize=9)
        for ax in axes[row]:
            ax.axis("off")
    fig.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "comparison.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(_flatten(value, f"{prefix}{key}/"))
        return out
    return {prefix.rstrip("/"): tree}


def _write_results(folder: Path, rows: list[dict[str, Any]], cfg: DictConfig) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=RESULT_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    (folder / "config.json").write_text(json.dumps(OmegaConf.to_container(cfg, resolve=True)))


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


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train")
def main(cfg: DictConfig) -> float | None:
    torch.set_float32_matmul_precision("high")
    return run(cfg).objective


if __name__ == "__main__":
    main()
