"""The report's outputs beside the table, from each method rebuilt from its run with the most
test images: ``comparison.png`` (one test slice through every method), the dose curve and the
committed weights."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from learnct.methods import METHODS
from learnct.reporting.weights import WEIGHTS_MAX_MB
from learnct.run.atomic_files import atomic_open
from learnct.run.results import n_images

__all__ = ["load_methods", "write_dose_curve", "write_figure", "write_weights"]


def _method_order(name: str) -> int:
    names = [cls.__name__ for cls in METHODS.values()]
    return names.index(name) if name in names else len(names)


def load_methods(rows: list[dict[str, str]]) -> tuple[list[Any], Any, Any, Any]:
    """Each method rebuilt from its run with the most test images (methods that cannot be are
    reported and left out),
    the reference config (the first method's) and its physics preset and operator."""
    from learnct.reporting.run_methods import load_run_config, load_run_method
    from learnct.run.build import build_physics
    from learnct.run.config_checks import ConfigError
    from learnct.run.results import ResultsError

    # a method's figures use its run with the most test images (its main test run, not an
    # extra evaluation on two scans); among equals the first test set in name order
    chosen: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["method"] not in chosen or n_images(row) > n_images(chosen[row["method"]]):
            chosen[row["method"]] = row
    folders = {name: row["_folder"] for name, row in chosen.items()}
    methods, reference, preset, operator = [], None, None, None
    for name in sorted(folders, key=_method_order):
        try:
            if reference is None:
                reference = load_run_config(Path(folders[name]))
                preset, operator = build_physics(reference)
            methods.append(load_run_method(Path(folders[name]), operator))
        except (ResultsError, ConfigError) as err:
            print(f"left out of the figures: {name}: {err}")
    return methods, reference, preset, operator


def write_figure(
    methods: list[Any],
    reference: Any,
    preset: Any,
    operator: Any,
    folder: Path,
    test_set: str | None = None,
    window: tuple[float, float] | None = None,
) -> Path:
    """``comparison.png``: the first slice of ``test_set`` (default: Shepp-Logan when the
    test set has it, else the first test set) through every method; ``window``: grey range."""
    import torch

    from learnct.evaluation import loaders_by_test_set
    from learnct.reporting import comparison_figure, reference_datamodule

    datamodule = reference_datamodule(reference, preset, operator, test_size=1)
    names = datamodule.sources["test"]
    if test_set is None:
        test_set = "shepp_logan" if "shepp_logan" in names else names[0]
    if test_set not in names:
        raise ValueError(f"test set {test_set!r} is not in this setup's test sets {names}")
    raw = next(iter(loaders_by_test_set(datamodule)[test_set]))
    batch = datamodule.simulate({k: v[:1] if torch.is_tensor(v) else v for k, v in raw.items()})
    recons = [(m.name, m.model.reconstruct(batch.sinogram)[0, 0]) for m in methods]
    noise = f"{preset.photons:g} photons" if preset.noise == "poisson" else preset.noise
    title = f"{preset.name}: {test_set} test slice 0, {noise}"
    if window is not None:
        title += f"; images in [{window[0]:g}, {window[1]:g}]"
    path = folder / "comparison.png"
    return comparison_figure(batch.image[0, 0], recons, path, title, window=window)


def write_dose_curve(
    methods: list[Any],
    reference: Any,
    preset: Any,
    operator: Any,
    folder: Path,
    photons: tuple[float, ...],
    n_images: int,
    test_set: str | None = None,
    folder_root: Path | None = None,
) -> tuple[Path, Path]:
    """``dose_curve.csv`` and ``dose_curve.png``: every method on the first ``n_images`` of
    ``test_set`` (default: the first test set) simulated at each dose in ``photons``.
    ``folder_root``: instead every slice of ``folder_root/test`` (folder source, physical
    size), written to ``dose_curve_real_ct.csv`` / ``.png``."""
    from learnct.reporting import DOSE_FIELDS, dose_curve, plot_dose_curve, reference_datamodule

    if preset.noise != "poisson":
        raise ValueError(
            f"a dose curve needs a Poisson preset; {preset.name!r} uses {preset.noise} noise"
        )
    stem, extra = "dose_curve", {}
    if folder_root is not None:
        stem, test_set = "dose_curve_real_ct", "folder"
        extra = {"folder_root": folder_root, "folder_fit": "spacing", "test_size": None}
    else:
        names = reference_datamodule(reference, preset, operator, test_size=1).sources["test"]
        test_set = test_set or names[0]
        if test_set not in names:
            raise ValueError(f"test set {test_set!r} is not in this setup's test sets {names}")

    def make(dose: float) -> Any:
        return reference_datamodule(
            reference,
            preset,
            operator,
            photons=dose,
            test_source=[test_set],
            **{"test_size": n_images, **extra},
        )

    rows = dose_curve(methods, make, photons)
    csv_path = folder / f"{stem}.csv"
    with atomic_open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=DOSE_FIELDS)
        writer.writeheader()
        writer.writerows(rows)
    png = plot_dose_curve(rows, folder / f"{stem}.png", table_photons=preset.photons)
    return csv_path, png


def write_weights(
    methods: list[Any],
    reference: Any,
    preset: Any,
    operator: Any,
    folder: Path,
    n_images: int,
    max_mb: float | None = WEIGHTS_MAX_MB,
) -> list[Path]:
    """``weights/<Method>.ckpt`` (stripped, at most ``max_mb`` each), ``weights/check.csv``
    and ``weights/config.json``: see :mod:`learnct.reporting.weights`."""
    from learnct.reporting import reference_datamodule
    from learnct.reporting.weights import export_weights, write_weights_config

    datamodule = reference_datamodule(reference, preset, operator, test_size=n_images)
    ckpts, check = export_weights(methods, folder / "weights", datamodule, n_images, max_mb)
    if not ckpts:
        return []
    weightless = {m.name: m.cfg.model for m in methods if m.checkpoint is None}
    return [*ckpts, check, write_weights_config(reference, folder / "weights", weightless)]
