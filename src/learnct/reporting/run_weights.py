"""Committed weights from training runs directly, for a setup folder without a results table
(e.g. ``experiments/fan_lowdose_ctlike``: the fan_lowdose methods fine-tuned on CT-like
phantoms, whose only test is the real-CT table, :mod:`learnct.reporting.real_ct`).

Each run's best checkpoint by validation PSNR (``checkpoints/step_*.ckpt``, never chosen on a
test set) is stripped into ``<out>/weights/<Method>.ckpt`` with ``check.csv`` and
``config.json`` (:func:`learnct.reporting.outputs.write_weights`) and its model card. The
check rows are measured on the first ``n_images`` images of the runs' *validation* source
(the test source of a ``data=real_ct`` run is a folder of slices that is not committed), so
``tests/test_committed_weights.py`` can re-measure them from committed files alone.

``python -m learnct.reporting.run_weights --out experiments/fan_lowdose_ctlike RUN [RUN ...]``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

__all__ = ["weights_from_runs"]


def weights_from_runs(runs: Sequence[Path], out: Path, n_images: int = 4) -> list[Path]:
    """Write ``out/weights/`` (checkpoints, ``check.csv``, ``config.json``, model cards) from
    the run folders ``runs`` (each a learned method of one physics); returns what was written."""
    from learnct.reporting.model_cards import write_model_cards
    from learnct.reporting.outputs import write_weights
    from learnct.reporting.run_methods import load_run_config, load_run_method
    from learnct.run.build import build_physics

    if not runs:
        raise ValueError("no run folders given: name the runs whose weights to commit")
    reference = load_run_config(Path(runs[0]))
    preset, operator = build_physics(reference)
    # the check runs on the validation source: synthetic, reproducible from committed files
    OmegaConf.update(reference, "data.test_source", reference.data.val_source)
    methods = [load_run_method(Path(run), operator) for run in runs]  # geometry checked
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise ValueError(f"two runs of one method among {names}: give one run per method")
    for method in methods:
        if method.checkpoint is None:
            raise ValueError(f"{method.folder}: {method.name} has no weights to commit")
        print(f"{method.name}: {method.checkpoint}", flush=True)
    written = write_weights(methods, reference, preset, operator, Path(out), n_images)
    return [*written, *write_model_cards(Path(out))]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m learnct.reporting.run_weights", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("runs", type=Path, nargs="+", help="run folders (logs/<task>/runs/*)")
    parser.add_argument("--out", type=Path, required=True, help="experiments/<setup name>")
    parser.add_argument("--n-images", type=int, default=4, help="check images per method")
    args = parser.parse_args(argv)
    for path in weights_from_runs(args.runs, args.out, args.n_images):
        print(f"written: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
