"""The real-CT table: every method on every real CT slice of ``data/real_ct/test`` (see
:mod:`learnct.data.real_ct`), per slice, at the committed weights' physics.

Nothing is chosen on the real slices: FBP's filter and frequency scaling and the ``lam`` and
iteration count of TV and TV-WLS are chosen by mean PSNR on ``val_size`` CT-like validation phantoms
(:mod:`learnct.data.ctlike`: no pixel of a real slice in it) with the same physics. The
phantom family itself, though, was revised after looking at errors on these slices (field
crops, necks and skull bases, sharp kernels: docs/results.md), which favours the rows trained
or chosen on it; the tables say so. The learned methods
are the committed weights of ``weights/`` as they are, and those of any ``--extra-weights``
folder of the same physics (e.g. ``experiments/fan_lowdose_ctlike/weights``: the same methods
fine-tuned on CT-like phantoms), each row labelled with its folder's training source. The
slices are read at their physical size (DICOM pixel spacing, ``folder_fit=spacing``);
measurements are the fixed test draws of the DataModule.

``python -m learnct.reporting.real_ct`` (``make report-real-ct``) writes ``real_ct.csv`` and
``real_ct.md`` beside the weights' setup (``experiments/<setup>/``). ``--weights-only``
re-scores only the learned rows and keeps the FBP and TV rows of the existing ``real_ct.csv``
(their choice on validation is the slow part and does not depend on the weights), if they were
measured on the same simulated slices (each row's ``test_hash``);
``--keep-choices`` keeps their choices and validation scores but re-scores every row on the
slices now in ``--root`` (the choice does not depend on the test slices either).
"""

from __future__ import annotations

import argparse
import ast
import csv
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from learnct.config_names import FILTERS
from learnct.evaluation import per_image_psnr, score, simulate_test_sets
from learnct.physics.presets import preset_differences
from learnct.reporting.weights import load_weights_config, stored_preset
from learnct.run.atomic_files import atomic_open
from learnct.run.testset_hash import batches_hash

if TYPE_CHECKING:
    from learnct.data import FolderDataset

__all__ = [
    "choose_on_validation",
    "read_real_ct",
    "real_ct_rows",
    "slice_names",
    "weights_rows",
    "write_real_ct",
]

#: TV weights tried on validation: a geometric grid of ratio 1.5 (validation PSNR is smooth in
#: log lam; 1.5 keeps the best within a few hundredths of a dB of the grid's optimum).
DEFAULT_LAMS = tuple(round(5.0 * 1.5**k, 2) for k in range(12))  # 5 ... 432.5
#: Chambolle-Pock iteration counts tried with each lam (one solve scores them all): the
#: iteration count is a knob too (TV-WLS on 8 CT-like validation phantoms at fan_lowdose, lam
#: 7.5: 33.52 dB after 100 iterations, 35.57 after 1000, 35.50 after 3000).
DEFAULT_TV_ITERATIONS = (100, 200, 300, 500, 1000, 2000, 3000)
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


def choose_tv_on_validation(
    make, lams: Sequence[float], iterations: Sequence[int], batches
) -> tuple[tuple[float, int], float, Any, list[tuple[tuple[float, int], float]]]:
    """:func:`choose_on_validation` over every ``(lam, iterations)`` of ``lams`` x
    ``iterations``, with one solve of ``max(iterations)`` per lam (``make(lam, n)`` returns a
    :class:`~learnct.methods.TV` of ``n`` iterations; its :meth:`iterates` are scored at each
    count). Returns the best pair, its PSNR, its method and every pair's PSNR."""
    counts, tried = sorted(set(iterations)), []
    for lam in lams:
        psnr: dict[int, list[torch.Tensor]] = {n: [] for n in counts}
        method = make(lam, counts[-1])
        with torch.no_grad():
            for batch in batches:
                for n, f in enumerate(method.iterates(batch.sinogram)):
                    if n in psnr:
                        psnr[n].append(per_image_psnr(f, batch.image))
        for n in counts:
            tried.append(((lam, n), float(torch.cat(psnr[n]).mean())))
        best_here = max(tried[-len(counts) :], key=lambda t: t[1])
        print(f"  validation lam {lam:g}: best {best_here[1]:.2f} dB at {best_here[0][1]}")
    (lam, n), value = max(tried, key=lambda t: t[1])
    return (lam, n), value, make(lam, n), tried


def weights_rows(
    folders: Sequence[Path], operator: Any, test: Any, names: list[str], labelled: bool
) -> list[dict[str, Any]]:
    """One row per checkpoint of every weights folder in ``folders``, scored on the simulated
    real slices ``test``; with ``labelled`` each method name is followed by its folder's
    training source (``config.json``'s ``data.source``), e.g. ``LearnedPrimalDual (ctlike)``.
    Every folder must hold weights of ``operator``'s physics (``config.json``'s ``physics``
    measuring as the first folder's: :func:`~learnct.physics.presets.preset_differences`)."""
    from learnct.methods.checkpoints import (
        check_checkpoint,
        read_checkpoint,
        reading_checkpoints_once,
    )
    from learnct.methods.pretrained import checkpoint_method

    physics = stored_preset(load_weights_config(folders[0]), folders[0] / "config.json")
    candidates = []
    for weights in folders:
        stored = load_weights_config(weights)
        changes = preset_differences(stored_preset(stored, weights / "config.json"), physics)
        if changes:
            named = ", ".join(f"{k} {ours} ({theirs})" for k, ours, theirs in changes)
            raise ValueError(
                f"{weights}/config.json: its physics differ from {folders[0]}/config.json's "
                f"({named}): a real-CT table compares weights of one physics (give another "
                "--setup instead)"
            )
        source = stored.get("data", {}).get("source", "?")
        for path in sorted(weights.glob("*.ckpt")):
            with reading_checkpoints_once():  # the class, then the checks: one read
                cls = checkpoint_method(read_checkpoint(path), path)  # as saved, not its name
                check_checkpoint(path, cls.__name__, operator.geometry)
            model = cls.load_from_checkpoint(
                path, operator=operator, map_location="cpu", weights_only=True
            )
            label = f"{model.result_name} ({source})" if labelled else model.result_name
            choice = f"weights={weights.parent.name}/{path.name}"
            candidates.append((label, choice, model.eval()))
    return [
        _row(label, choice, None, [], method, test, names) for label, choice, method in candidates
    ]


def slice_names(slices: FolderDataset) -> list[str]:
    """The test slices' names, the table's columns: their paths under the folder (unique, also
    where series in subfolders reuse file names)."""
    return [p.relative_to(slices.root).as_posix() for p in slices.files]


def _row(label, chosen, val_psnr, tried, method, test, names) -> dict[str, Any]:
    with torch.no_grad():
        scores = score(method.reconstruct, test)
    row = {
        "method": label,
        "chosen": chosen,
        "val_psnr": val_psnr,
        "val_grid": "; ".join(f"{o}: {v:.2f}" for o, v in tried),
        "n_slices": scores.n_images,
        "psnr": scores.mean_psnr,
        "ssim": scores.mean_ssim,
        **{f"psnr:{n}": float(p) for n, p in zip(names, scores.psnr, strict=True)},
    }
    print(f"{label}: {row['psnr']:.2f} dB", flush=True)
    return row


def _classical(operator: Any, mu: float) -> list[tuple[str, Any]]:
    """``(knob, make)`` of FBP, TV and TV-WLS: ``make(option)`` builds the method of an
    option, a tuple of the knob's values (``("hann", 0.7)``, ``(lam, iterations)``)."""
    from learnct.methods import FBP, TV

    def fbp(option):
        return FBP(operator, filter=option[0], frequency_scaling=option[1])

    def tv(data_term):
        def make(option):
            return TV(operator, lam=option[0], iterations=option[1], data_term=data_term, mu=mu)

        return make

    return [("filter,frequency_scaling", fbp), *(("lam,iterations", tv(d)) for d in ("ls", "wls"))]


def _kept_choice(row: dict[str, Any], makers: list[tuple[str, Any]]) -> Any:
    """The method of a written row's choice (``chosen``: ``"<knob>=<option>"``)."""
    knob, _, option = row["chosen"].partition("=")
    value = ast.literal_eval(option)
    for name, make in makers:
        if name == knob and (method := make(value)).result_name == row["method"]:
            return method
    raise ValueError(f"real_ct.csv: no FBP or TV row makes {row['method']} {row['chosen']}")


def real_ct_rows(
    weights: Path,
    root: Path,
    val_size: int = 8,
    lams: Sequence[float] = DEFAULT_LAMS,
    iterations: Sequence[int] = DEFAULT_TV_ITERATIONS,
    extra_weights: Sequence[Path] = (),
    weights_only: bool = False,
    kept_choices: Sequence[dict[str, Any]] = (),
) -> tuple[list[dict[str, Any]], list[str], float]:
    """One row per method (its choice, validation PSNR, mean and per-slice test PSNR/SSIM),
    the slice names and the dose (photons per detector pixel): FBP, TV and TV-WLS chosen on
    ``val_size`` CT-like validation phantoms (skipped with ``weights_only``; with
    ``kept_choices``, the rows of an earlier table, their choices and validation scores are
    kept and re-scored on the slices of ``root``), then the checkpoints of ``weights`` and of
    every ``extra_weights`` folder. Every row records the ``test_hash`` of the simulated
    slices (:func:`~learnct.run.testset_hash.batches_hash`: slices, dose, seed and
    simulation), so that rows kept later can be checked to share them."""
    from omegaconf import OmegaConf

    from learnct.data import CTDataModule
    from learnct.run import build_physics

    cfg = OmegaConf.create(load_weights_config(weights))
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
    dm.setup("test")
    test = simulate_test_sets(dm)["folder"]
    test_hash = batches_hash(test)  # the exact measurements scored: what kept rows must share
    names = slice_names(dm.datasets["test"][0].dataset)
    makers = _classical(operator, preset.mu)
    rows = []
    for kept in kept_choices:  # chosen on validation before: only the test is new
        method = _kept_choice(kept, makers)
        row = _row(kept["method"], kept["chosen"], kept["val_psnr"], [], method, test, names)
        rows.append({**row, "val_grid": kept["val_grid"]})
    if not weights_only and not kept_choices:
        dm.setup("validate")
        val = [dm.simulate(b) for b in dm.val_dataloader()]
        print("FBP filter", flush=True)
        (fbp_knob, make_fbp), *tvs = makers
        fbp_options = [(f, scale) for f in FILTERS for scale in FREQUENCY_SCALINGS]
        candidates = [(fbp_knob, *choose_on_validation(make_fbp, fbp_options, val))]
        for (knob, make), data_term in zip(tvs, ("ls", "wls"), strict=True):
            print(f"TV {data_term} lam, iterations", flush=True)
            choice = choose_tv_on_validation(
                lambda lam, n, make=make: make((lam, n)), lams, iterations, val
            )
            candidates.append((knob, *choice))
        for knob, choice, val_psnr, method, tried in candidates:
            rows.append(
                _row(method.result_name, f"{knob}={choice}", val_psnr, tried, method, test, names)
            )
    rows += weights_rows([weights, *extra_weights], operator, test, names, bool(extra_weights))
    return [{**row, "test_hash": test_hash} for row in rows], names, preset.photons


def read_real_ct(folder: Path) -> list[dict[str, Any]]:
    """The rows of ``folder/real_ct.csv`` as :func:`write_real_ct` wrote them (numbers as
    floats, ``val_psnr`` None where empty)."""
    path = Path(folder) / "real_ct.csv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist: --weights-only keeps its FBP and TV rows; run without it"
        )
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    if not rows:
        raise FileNotFoundError(
            f"{path} has no rows: run make report-real-ct without --weights-only"
        )
    numeric = [k for k in rows[0] if k in ("psnr", "ssim") or k.startswith("psnr:")]
    for row in rows:
        row["val_psnr"] = float(row["val_psnr"]) if row["val_psnr"] else None
        row["n_slices"] = int(row["n_slices"])
        row.update({k: float(row[k]) for k in numeric})
    return rows


def write_real_ct(
    rows: list[dict[str, Any]], names: list[str], folder: Path, photons: float, settings: str = ""
) -> None:
    """``real_ct.csv`` (every field) and ``real_ct.md`` (sorted by mean PSNR) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_open(folder / "real_ct.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    head = ["method", "chosen on CT-like validation", "val PSNR", "PSNR", "SSIM", *names]
    lines = [
        f"# Real-CT test set ({len(names)} slices, {photons:g} photons per detector pixel)",
        "",
        "Per-slice PSNR (dB); knobs chosen on CT-like validation phantoms, never on these "
        "slices; but the CT-like phantom family was revised after looking at errors on these "
        "slices (docs/results.md), which favours the rows trained or chosen on it. Made by "
        f"`python -m learnct.reporting.real_ct` ({settings}).",
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
    parser.add_argument(
        "--iterations",
        type=int,
        nargs="+",
        default=list(DEFAULT_TV_ITERATIONS),
        help="TV iteration counts tried with each lam",
    )
    parser.add_argument("--lams", type=float, nargs="+", default=list(DEFAULT_LAMS))
    parser.add_argument("--out", type=Path, default=None, help="default: experiments/<setup>")
    parser.add_argument(
        "--extra-weights",
        type=Path,
        nargs="+",
        default=[],
        help="more weights folders of the same physics, e.g. experiments/fan_lowdose_ctlike/"
        "weights: their rows are added, each method labelled with its training source",
    )
    kept = parser.add_mutually_exclusive_group()
    kept.add_argument(
        "--weights-only",
        action="store_true",
        help="re-score only the learned weights and keep the FBP and TV rows of the existing "
        "real_ct.csv in --out (their validation choice is the slow part); refused where those "
        "rows were measured on other simulated slices (their test_hash)",
    )
    kept.add_argument(
        "--keep-choices",
        action="store_true",
        help="keep the FBP and TV choices (and validation scores) of the existing real_ct.csv "
        "in --out and re-score them, and the weights, on the slices of --root (a test set "
        "that changed needs no new choice: it is made on CT-like validation)",
    )
    args = parser.parse_args(argv)
    folder = Path("experiments") / args.setup
    out = args.out or folder
    kept = []
    if args.weights_only or args.keep_choices:
        kept = [r for r in read_real_ct(out) if not r["chosen"].startswith("weights=")]
    rows, names, photons = real_ct_rows(
        folder / "weights",
        args.root,
        args.val_size,
        args.lams,
        args.iterations,
        args.extra_weights,
        args.weights_only,
        kept if args.keep_choices else (),
    )
    if args.keep_choices:
        kept = []  # re-scored: in rows
    if kept and [k.removeprefix("psnr:") for k in kept[0] if k.startswith("psnr:")] != names:
        parser.error(
            f"{out}/real_ct.csv has other slices than {args.root}: run with --keep-choices "
            "instead of --weights-only"
        )
    stale = [k for k in kept if k.get("test_hash") != rows[0]["test_hash"]]
    if stale:
        named = ", ".join(f"{k['method']} ({k.get('test_hash') or 'not recorded'})" for k in stale)
        parser.error(
            f"{out}/real_ct.csv: the rows of {named} were measured on other test data than now "
            f"(test_hash {rows[0]['test_hash']}: another dose, seed or simulation of the "
            "slices, or the float rounding of another machine); run with --keep-choices "
            "instead of --weights-only to re-score them"
        )
    rows = kept + rows
    settings = (
        f"{args.val_size} CT-like validation slices, TV lam from "
        f"{', '.join(f'{lam:g}' for lam in args.lams)} x iterations from "
        f"{', '.join(str(n) for n in args.iterations)}"
    )
    if args.weights_only:
        settings += "; FBP and TV rows kept from the table before, learned rows re-scored"
    if args.keep_choices:
        settings += "; FBP and TV choices kept from the table before, every row re-scored"
    write_real_ct(rows, names, out, photons, settings)
    print((out / "real_ct.md").read_text())
    if out == folder:  # the committed table: the model cards that show its rows follow it
        from learnct.reporting.model_cards import write_model_cards
        from learnct.run.results import ResultsError

        for setup_folder in dict.fromkeys([folder, *(Path(w).parent for w in args.extra_weights)]):
            try:
                for card in write_model_cards(setup_folder):
                    print(f"wrote {card}")
            except ResultsError as err:  # e.g. its committed results.csv cannot be read
                print(f"real_ct.md written, the model cards not: {err}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
