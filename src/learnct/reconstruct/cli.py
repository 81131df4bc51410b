"""``learnct-reconstruct`` / ``make reconstruct ARGS="..."``: reconstruct your own data with a
committed model, a checkpoint, FBP or TV (docs/reconstruct.md).

    learnct-reconstruct --images scan/ --model lpd-fan_lowdose --output recon/
    learnct-reconstruct --sinograms sino.npy --preset fan_lowdose --method tv --output tv.nii.gz
    learnct-reconstruct --list-models

A mistake in the input or the options prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import inspect
import math
import sys
from pathlib import Path

from learnct.checks import window_argument

__all__ = ["main"]


def _rescale(text: str) -> tuple[float, float]:
    try:
        slope, intercept = (float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--rescale wants slope,intercept: {err}") from err
    if not (math.isfinite(slope) and math.isfinite(intercept) and slope != 0):
        raise argparse.ArgumentTypeError(f"--rescale needs a finite slope != 0, got {text!r}")
    return slope, intercept


def _slice_spacing(text: str) -> float:
    try:
        spacing = float(text)
    except ValueError:
        spacing = math.nan
    if not (math.isfinite(spacing) and spacing > 0):
        raise argparse.ArgumentTypeError(f"--slice-spacing needs a length > 0 in mm, got {text!r}")
    return spacing


def _parser() -> argparse.ArgumentParser:
    from learnct.methods.classical import DATA_TERMS, TV
    from learnct.physics.presets import PRESETS
    from learnct.reconstruct.engine import CLASSICAL
    from learnct.reconstruct.readers import IMAGE_UNITS
    from learnct.reconstruct.writers import FORMATS

    p = argparse.ArgumentParser(
        prog="learnct-reconstruct",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # --window's value is joined by its full name
    )
    source = p.add_mutually_exclusive_group()
    source.add_argument(
        "--images",
        type=Path,
        help="images to simulate measurements from: a DICOM folder or file, NIfTI, PNG/TIFF, NumPy",
    )
    source.add_argument(
        "--sinograms",
        type=Path,
        help="measured post-log sinograms (A, D) or (S, A, D): NumPy, HDF5, LoDoPaB "
        "observation_*.hdf5",
    )
    p.add_argument("--model", help="a committed model's name (--list-models) or a .ckpt path")
    p.add_argument(
        "--method", choices=sorted(CLASSICAL), help="a classical method instead of --model"
    )
    default = {k: v.default for k, v in inspect.signature(TV).parameters.items()}
    tv = p.add_argument_group("TV's settings (with --method tv)")
    tv.add_argument("--lam", type=float, help=f"regularisation weight (default {default['lam']})")
    steps = default["iterations"]
    tv.add_argument("--iterations", type=int, help=f"Chambolle-Pock iterations (default {steps})")
    tv.add_argument(
        "--data-term",
        choices=DATA_TERMS,
        help=f"ls: least squares; wls: weighted by the counts, exp(-mu g), i.e. TV-WLS (default "
        f"{default['data_term']})",
    )
    p.add_argument("--preset", help=f"the geometry and noise: one of {sorted(PRESETS)}")
    p.add_argument("--geometry-file", type=Path, help="the geometry as a YAML file (docs)")
    p.add_argument("--photons", type=float, help="dose: photons per detector pixel (simulation)")
    p.add_argument("--seed", type=int, help="seed of the simulated noise (default 0)")
    p.add_argument(
        "--allow-geometry-mismatch",
        action="store_true",
        help="run a model on a geometry other than the one it was trained for",
    )
    p.add_argument("--units", choices=IMAGE_UNITS, help="units of PNG/TIFF/NumPy/NIfTI images")
    p.add_argument(
        "--rescale",
        type=_rescale,
        help="slope,intercept: stored value -> --units (e.g. 1,-1024 for a PNG of HU+1024)",
    )
    p.add_argument("--key", help="the HDF5 dataset of --sinograms (default data)")
    p.add_argument("--output", type=Path, help="output folder (DICOM, PNG) or file (.nii.gz, .npy)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output file, or the slices in an output folder",
    )
    p.add_argument("--format", choices=sorted(FORMATS), help="default: from --output's suffix")
    p.add_argument(
        "--window", type=window_argument, help="PNG window in HU, lo,hi (default -1000,1000)"
    )
    p.add_argument(
        "--slice-spacing",
        type=_slice_spacing,
        help="mm between slices whose positions the input does not give (default 1)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="slices per batch")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda")
    p.add_argument("--backend", default="auto", help="the ray transform's backend")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--list-models", action="store_true", help="list the committed models")
    return p


def _fail(message: object) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def main(argv: list[str] | None = None) -> int:
    """The console script: run the command; exit status 0 (a mistake exits with 2)."""
    reconstruct(argv)
    return 0


#: Options whose value may start with a minus sign (``--window -200,200``).
SIGNED_OPTIONS = ("--window", "--rescale")


def _joined_signed_values(argv: list[str]) -> list[str]:
    """``argv`` with ``--window -200,200`` as ``--window=-200,200`` (argparse would take
    ``-200,200`` for an option)."""
    out: list[str] = []
    for arg in argv:
        signed = arg.startswith("-") and (arg[1:2].isdigit() or arg[1:2] == ".")
        if out and out[-1] in SIGNED_OPTIONS and signed:
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


#: Options that apply to one input only, by the input they need.
IMAGES_ONLY = {"photons": "--photons", "seed": "--seed", "units": "--units", "rescale": "--rescale"}
SINOGRAMS_ONLY = {"key": "--key"}


def _check_applicable(args: argparse.Namespace) -> None:
    """``ValueError`` for a given option that the input or output would ignore."""
    ignored = SINOGRAMS_ONLY if args.images is not None else IMAGES_ONLY
    given = [flag for name, flag in ignored.items() if getattr(args, name) is not None]
    if given:
        needs = "--sinograms" if args.images is not None else "--images (simulated data)"
        raise ValueError(f"{', '.join(given)}: only with {needs}; drop it")


def reconstruct(argv: list[str] | None = None) -> list[Path]:
    """Run the command; returns the files written."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = _parser().parse_args(_joined_signed_values(argv))
    from learnct.data.errors import DataError
    from learnct.methods.pretrained import pretrained_names

    if args.list_models:
        print("\n".join(pretrained_names()))
        return []
    if args.images is None and args.sinograms is None:
        _fail("give --images (to simulate from) or --sinograms (measured)")
    if args.output is None:
        _fail("give --output (a folder for DICOM/PNG, or a .nii.gz / .npy file)")
    if args.batch_size < 1:
        _fail(f"--batch-size must be at least 1, got {args.batch_size}")
    try:
        return _reconstruct(args)
    except (ValueError, DataError, OSError) as err:  # OSError: e.g. --output can't be written
        _fail(err)
    return []


def _check_slice_spacing(spacing: float | None, positions: list[float] | None) -> float:
    """The slice spacing (mm) to write: ``--slice-spacing`` (default 1 mm) where the input
    gives no slice positions; ``ValueError`` where it does (the option would be ignored)."""
    if spacing is not None and positions is not None:
        raise ValueError(
            "--slice-spacing: the input gives each slice's position, and the output keeps "
            "them; drop it"
        )
    return 1.0 if spacing is None else spacing


def _reconstruct(args: argparse.Namespace) -> list[Path]:
    from learnct.reconstruct.engine import build_reconstructor
    from learnct.reconstruct.readers import read_images, read_sinograms
    from learnct.reconstruct.writers import (
        FOLDER_FORMATS,
        check_output,
        check_positions,
        format_for,
        write_volume,
    )

    _check_applicable(args)
    fmt = format_for(args.output, args.format)
    if args.window is not None and fmt != "png":
        raise ValueError(f"--window: the PNG window; {fmt} stores HU (drop it, or --format png)")
    check_output(args.output, fmt, args.images or args.sinograms, args.overwrite)
    method = args.method or (None if args.model else "fbp")
    tv_options = {
        name: value
        for name, value in (
            ("lam", args.lam),
            ("iterations", args.iterations),
            ("data_term", args.data_term),
        )
        if value is not None
    }
    if tv_options and method != "tv":
        flags = ", ".join(f"--{name.replace('_', '-')}" for name in tv_options)
        raise ValueError(f"{flags}: TV's settings, for --method tv (not {args.model or method})")
    runner = build_reconstructor(
        args.model,
        method,
        args.preset,
        args.geometry_file,
        args.photons,
        args.allow_geometry_mismatch,
        args.device,
        args.backend,
        tv_options,
    )
    provenance = runner.provenance()
    if args.images is not None:
        images = read_images(args.images, args.units, args.rescale)
        check_positions(images.volume.positions, fmt)
        slice_spacing = _check_slice_spacing(args.slice_spacing, images.volume.positions)
        seed = args.seed or 0
        volume = runner.from_images(images, args.batch_size, seed, args.quiet)
        provenance.update(input=str(args.images), input_kind="images (simulated)", seed=seed)
    else:
        sinograms = read_sinograms(args.sinograms, runner.physics.mu, args.key)
        slice_spacing = _check_slice_spacing(args.slice_spacing, None)
        volume = runner.from_sinograms(sinograms, args.batch_size, args.quiet)
        provenance.update(input=str(args.sinograms), input_kind="measured sinograms")
        provenance.pop("photons", None)  # measured: the preset's dose did not make them
    written = write_volume(
        volume, args.output, fmt, provenance, window=args.window, slice_spacing=slice_spacing
    )
    where = args.output if fmt in FOLDER_FORMATS else written[0]  # the suffix a writer added
    print(f"{len(volume.slices)} slices ({provenance['method']}, {runner.device}) -> {where}")
    return written


if __name__ == "__main__":
    main()
