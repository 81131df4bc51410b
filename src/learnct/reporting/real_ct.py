"""The real-CT table: every method on every real CT slice of ``data/real_ct/test`` (see
:mod:`learnct.data.real_ct`), per slice, at the committed weights' physics.

Nothing is chosen on the real slices: FBP's filter and frequency scaling and the ``lam`` of
TV and TV-WLS are chosen by mean PSNR on ``val_size`` CT-like validation phantoms
(:mod:`learnct.data.ctlike`, a disjoint source) with the same physics; the learned methods
are the committed weights of ``weights/`` as they are. The slices are read at their
physical size (DICOM pixel spacing, ``folder_fit=spacing``); measurements are the fixed test
draws of the DataModule.

``python -m learnct.reporting.real_ct`` (``make report-real-ct``) writes ``real_ct.csv`` and
``real_ct.md`` beside the weights' setup (``experiments/<setup>/``).
"""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from learnct.config_names import FILTERS
from learnct.evaluation import score, simulate_test_sets

__all__ = ["choose_on_validation", "real_ct_rows", "write_real_ct"]

DEFAULT_LAMS = (5.0, 15.0, 45.0, 135.0, 405.0)
FREQUENCY_SCALINGS = (0.5, 0.7, 1.0)


def choose_on_validation(
    make, options: Sequence[Any], batches
) -> tuple[Any, float, Any, list[tuple[Any, float]]]:
    """The option whose method ``make(option)`` has the best mean validation PSNR on
    ``batches``: ``(option, its PSNR, its method, [(option, PSNR) of every option])``."""
    best, tried = None, []
    for option in options:
        method = make(option)
        with torch.no_grad():
            psnr = score(method.reconstruct, batches).mean_psnr
        print(f"  validation {option!r}: {psnr:.2f} dB", flush=True)
        tried.append((option, psnr))
        if best is None or psnr > best[1]:
            best = (option, psnr, method)
    return (*best, tried)


def real_ct_rows(
    weights: Path,
    root: Path,
    val_size: int = 8,
    lams: Sequence[float] = DEFAULT_LAMS,
    iterations: int = 100,
) -> tuple[list[dict[str, Any]], list[str], float]:
    """One row per method (its choice, validation PSNR, mean and per-slice test PSNR/SSIM),
    the slice names and the dose (photons per detector pixel)."""
    from omegaconf import OmegaConf

    from learnct.data import CTDataModule
    from learnct.methods import FBP, METHODS, TV
    from learnct.methods.checkpoints import check_checkpoint
    from learnct.run import build_physics
    from learnct.run.stored_config import check_stored_targets

    stored = json.loads((weights / "config.json").read_text())
    check_stored_targets(stored, weights / "config.json")
    cfg = OmegaConf.create(stored)
    preset, operator = build_physics(cfg)
    dm = CTDataModule(
        physics=preset,
        operator=operator,
        source="ctlike",
        val_source="ctlike",
        test_source="folder",
        folder_root=root,
        val_size=val_size,
        eval_batch_size=8,
        seed=int(cfg.get("seed", 0)),
    )
    dm.setup("validate")
    val = [dm.simulate(b) for b in dm.val_dataloader()]
    dm.setup("test")
    test = simulate_test_sets(dm)["folder"]
    names = [p.name for p in dm.datasets["test"][0].dataset.files]
    candidates = []
    print("FBP filter", flush=True)
    fbp_options = [(f, scale) for f in FILTERS for scale in FREQUENCY_SCALINGS]

    def make_fbp(option):
        return FBP(operator, filter=option[0], frequency_scaling=option[1])

    candidates.append(
        ("filter,frequency_scaling", *choose_on_validation(make_fbp, fbp_options, val))
    )
    for data_term in ("ls", "wls"):
        print(f"TV {data_term} lam", flush=True)

        def make(lam, data_term=data_term):
            return TV(operator, lam=lam, iterations=iterations, data_term=data_term, mu=preset.mu)

        candidates.append(("lam", *choose_on_validation(make, lams, val)))
    classes = {cls.__name__: cls for cls in METHODS.values()}
    for path in sorted(weights.glob("*.ckpt")):
        cls = classes[path.stem]
        check_checkpoint(path, cls.__name__, operator.geometry)
        model = cls.load_from_checkpoint(
            path, operator=operator, map_location="cpu", weights_only=True
        )
        candidates.append(("weights", f"{weights.name}/{path.name}", None, model.eval(), []))
    rows = []
    for knob, choice, val_psnr, method, tried in candidates:
        with torch.no_grad():
            scores = score(method.reconstruct, test)
        rows.append(
            {
                "method": method.result_name,
                "chosen": f"{knob}={choice}",
                "val_psnr": val_psnr,
                "val_grid": "; ".join(f"{o}: {v:.2f}" for o, v in tried),
                "n_slices": scores.n_images,
                "psnr": scores.mean_psnr,
                "ssim": scores.mean_ssim,
                **{f"psnr:{n}": float(p) for n, p in zip(names, scores.psnr, strict=True)},
            }
        )
        print(f"{rows[-1]['method']}: {rows[-1]['psnr']:.2f} dB", flush=True)
    return rows, names, preset.photons


def write_real_ct(
    rows: list[dict[str, Any]], names: list[str], folder: Path, photons: float, settings: str = ""
) -> None:
    """``real_ct.csv`` (every field) and ``real_ct.md`` (sorted by mean PSNR) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "real_ct.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    head = ["method", "chosen on CT-like validation", "val PSNR", "PSNR", "SSIM", *names]
    lines = [
        f"# Real-CT test set ({len(names)} slices, {photons:g} photons per detector pixel)",
        "",
        "Per-slice PSNR (dB); knobs chosen on CT-like validation phantoms, never on these "
        f"slices. Made by `python -m learnct.reporting.real_ct` ({settings}).",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for r in sorted(rows, key=lambda r: r["psnr"]):
        val = "" if r["val_psnr"] is None else f"{r['val_psnr']:.2f}"
        cells = [r["method"], f"`{r['chosen']}`", val, f"{r['psnr']:.2f}", f"{r['ssim']:.3f}"]
        cells += [f"{r[f'psnr:{n}']:.2f}" for n in names]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Validation PSNR (dB) of every option tried:", ""]
    lines += [f"- {r['method']}: {r['val_grid']}" for r in rows if r.get("val_grid")]
    (folder / "real_ct.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m learnct.reporting.real_ct", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--setup", default="fan_lowdose", help="experiments/<setup>/weights")
    parser.add_argument("--root", type=Path, default=Path("data/real_ct"))
    parser.add_argument("--val-size", type=int, default=8, help="CT-like validation slices")
    parser.add_argument("--iterations", type=int, default=100, help="TV iterations")
    parser.add_argument("--lams", type=float, nargs="+", default=list(DEFAULT_LAMS))
    parser.add_argument("--out", type=Path, default=None, help="default: experiments/<setup>")
    args = parser.parse_args(argv)
    folder = Path("experiments") / args.setup
    rows, names, photons = real_ct_rows(
        folder / "weights", args.root, args.val_size, args.lams, args.iterations
    )
    out = args.out or folder
    settings = (
        f"{args.val_size} CT-like validation slices, TV {args.iterations} iterations, "
        f"lam from {', '.join(f'{lam:g}' for lam in args.lams)}"
    )
    write_real_ct(rows, names, out, photons, settings)
    print((out / "real_ct.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
