"""Every committed checkpoint has its model card beside it, equal to what ``make report``
generates from the committed files (so a card cannot go stale), and a card follows the table."""

from __future__ import annotations

import csv
import shutil

import pytest

from conftest import REPO_ROOT
from learnct.methods.pretrained import pretrained_models
from learnct.reporting.__main__ import main as report
from learnct.reporting.model_cards import model_card, write_model_cards
from learnct.run.results import file_digest

MODELS = pretrained_models(REPO_ROOT / "experiments")


def _regenerate(setup: str) -> str:
    """The command that rewrites a setup's cards: ``make report`` for a physics preset's
    folder, ``run_weights --remeasure`` for a weights folder of its own name (CT-like)."""
    from learnct.physics import PRESETS

    if setup in PRESETS:
        return f"make report SETUP={setup} ARGS=--cards-only"
    return f"python -m learnct.reporting.run_weights --out experiments/{setup} --remeasure"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_committed_card_is_what_make_report_generates(name):
    entry = MODELS[name]
    card = entry.path.with_suffix(".md")
    assert card.is_file(), f"{card} is missing: {_regenerate(entry.setup)}"
    assert card.read_text() == model_card(entry), f"{card} is stale: {_regenerate(entry.setup)}"


def test_a_card_shows_the_committed_table_and_the_checkpoints_own_settings(tmp_path):
    source = MODELS["lpd-fan_lowdose"].path.parents[1]
    setup = tmp_path / "fan_lowdose"
    (setup / "weights").mkdir(parents=True)
    for name in ("LearnedPrimalDual.ckpt", "config.json", "check.csv"):
        shutil.copy(source / "weights" / name, setup / "weights" / name)
    with open(source / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for row in rows:
        if row["method"] == "LearnedPrimalDual" and row["test_set"] == "shepp_logan":
            row["psnr"] = "12.3456"
    with open(setup / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    assert write_model_cards(setup) == [setup / "weights" / "LearnedPrimalDual.md"]
    card = setup / "weights" / "LearnedPrimalDual.md"
    card.unlink()
    report(["--setup", "fan_lowdose", "--out", str(tmp_path), "--cards-only"])  # make report
    text = card.read_text()
    assert "| shepp_logan | 64 | 12.35 |" in text  # the table as committed, rounded
    assert (
        "| optimiser steps | 5,380 in its run (those of the weights it started from not "
        "recorded) (epoch 26) |" in text
    )
    assert "`init='fbp'`" in text and "200 angles over 360 degrees" in text
    assert "10000 photons per detector pixel" in text
    assert "Against dose" not in text  # no dose_curve.csv in this setup


def test_a_folder_test_set_is_named_with_its_folder_from_the_quoted_command():
    """The results row's command is shell-quoted (``reporting.table``): a folder with a space
    comes back whole."""
    import shlex

    from learnct.reporting.model_cards import _test_set

    command = f"learnct-train experiment=lpd {shlex.quote('data.folder_root=my scans/ct')}"
    assert _test_set({"test_set": "folder", "config": command}) == "folder (`my scans/ct`)"
    assert _test_set({"test_set": "ellipses", "config": "learnct-train experiment=lpd"}) == (
        "ellipses"
    )


def test_a_card_names_the_run_that_trained_the_weights_and_the_runs_they_started_from(tmp_path):
    import torch

    source = MODELS["lpd-fan_lowdose"].path.parents[1]
    setup = tmp_path / "fan_lowdose"
    (setup / "weights").mkdir(parents=True)
    for name in ("config.json", "check.csv"):
        shutil.copy(source / "weights" / name, setup / "weights" / name)
    checkpoint = torch.load(
        source / "weights" / "LearnedPrimalDual.ckpt", map_location="cpu", weights_only=True
    )
    first = {
        "run_id": "aaa111",
        "task_name": "lpd",
        "started": "2026-11-01T10:00:00",
        "commit": "abc1234",
        "command": "learnct-train experiment=lpd",
        "started_from": None,
    }
    checkpoint["learnct"]["source"] = {
        **first,
        "run_id": "bbb222",
        "task_name": "ctlike_lpd",
        "command": "learnct-train experiment=lpd data=real_ct init_weights=lpd-fan_lowdose",
        "started_from": {"checkpoint": "w/LPD.ckpt", "steps": 9600, "source": first},
    }
    torch.save(checkpoint, setup / "weights" / "LearnedPrimalDual.ckpt")
    (card,) = write_model_cards(setup)
    text = card.read_text()
    assert (
        "| run | `bbb222` (task `ctlike_lpd`, started 2026-11-01T10:00:00, commit `abc1234`): "
        "`learnct-train experiment=lpd data=real_ct init_weights=lpd-fan_lowdose` |\n"
        "| started from | `w/LPD.ckpt` (9,600 steps) |\n"
        "| its run | `aaa111` (task `lpd`, started 2026-11-01T10:00:00, commit `abc1234`): "
        "`learnct-train experiment=lpd` |\n" in text
    )
    del checkpoint["learnct"]["source"]  # weights saved before checkpoints named their run
    torch.save(checkpoint, setup / "weights" / "LearnedPrimalDual.ckpt")
    (card,) = write_model_cards(setup)
    assert "| run | not recorded (saved before checkpoints named their run) |" in card.read_text()
    checkpoint["learnct_run"] = {"id": "ccc333"}  # its run stamp alone, as exports keep it
    torch.save(checkpoint, setup / "weights" / "LearnedPrimalDual.ckpt")
    (card,) = write_model_cards(setup)
    assert "| run | `ccc333` (its id only: saved before checkpoints recorded more) |" in (
        card.read_text()
    )
    # weights started from a file that kept only its run stamp (source_record's {"run_id"})
    start = {"checkpoint": "w/LPD.ckpt", "steps": 9600, "source": {"run_id": "ccc333"}}
    checkpoint["learnct"]["source"] = {**first, "run_id": "ddd444", "started_from": start}
    torch.save(checkpoint, setup / "weights" / "LearnedPrimalDual.ckpt")
    (card,) = write_model_cards(setup)
    assert (
        "| started from | `w/LPD.ckpt` (9,600 steps) |\n"
        "| its run | `ccc333` (its id only: saved before checkpoints recorded more) |\n"
        in card.read_text()
    )


def test_a_card_shows_only_the_table_rows_of_its_own_weights(tmp_path):
    """A table row of the method from another run (trained since, not exported) is not shown
    as the file's: it is listed apart, with its run; once ``check.csv`` records that run as
    the file's source (``make report WEIGHTS=1``), it is the file's row."""
    source = MODELS["lpd-fan_lowdose"].path.parents[1]
    setup = tmp_path / "fan_lowdose"
    (setup / "weights").mkdir(parents=True)
    for name in ("LearnedPrimalDual.ckpt", "config.json"):
        shutil.copy(source / "weights" / name, setup / "weights" / name)
    with open(source / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    new_run = "logs/lpd/runs/2026-12-03_08-00-00_abcdef"
    for row in rows:
        if row["method"] == "LearnedPrimalDual" and row["test_set"] == "ellipses":
            row.update(psnr="50.0", train_steps="9000", run_dir=new_run)
            row["config"] = "learnct-train experiment=lpd trainer.max_steps=9000"
    with open(setup / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(source / "weights" / "check.csv", newline="") as fh:
        check = list(csv.DictReader(fh))
    entry = pretrained_models(tmp_path)["lpd-fan_lowdose"]
    eval_run = next(  # the learnct-eval run of the committed file
        r["run_dir"]
        for r in rows
        if r["method"] == "LearnedPrimalDual" and r["test_set"] == "shepp_logan"
    )
    (setup / "dose_curve.csv").write_text(  # a row measured with each run's weights
        "method,photons,test_set,n_images,psnr,ssim,run_dir\n"
        f"LearnedPrimalDual,1000.0,ellipses,8,31.25,0.9,{eval_run}\n"
        f"LearnedPrimalDual,1000.0,ellipses,8,52.75,0.9,{new_run}\n"
    )

    def card_with_check(run_dir: str) -> str:
        with open(setup / "weights" / "check.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=[*check[0], "run_dir"])
            writer.writeheader()
            writer.writerows(
                {**r, "run_dir": run_dir if r["file"] == entry.path.name else ""} for r in check
            )
        return model_card(entry)

    text = card_with_check("logs/lpd/runs/the_exported_one")
    own, others = text.split("Rows of `LearnedPrimalDual` in the table that test other weights")
    assert "| shepp_logan | 64 | 46.23 |" in own  # its learnct-eval row names this file
    assert "50.00" not in own
    assert f"| ellipses | 64 | 50.00 | 9000 | `{new_run}` |" in others
    assert (
        "(their runs were not exported here: `make report WEIGHTS=1` exports them; "
        "`make eval EXP=lpd CKPT=lpd-fan_lowdose` tests this one)" in others
    )
    assert "| 1000 | ellipses | 8 | 31.25 |" in text and "52.75" not in text

    # a learnct-eval row of a file exported before under this name (another digest) is not
    def eval_row_tested(digest: str) -> str:
        for row in rows:
            tested = row["method"] == "LearnedPrimalDual" and row["test_set"] == "shepp_logan"
            row["weights_hash"] = digest if tested else ""
        with open(setup / "results.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
        return card_with_check("logs/lpd/runs/the_exported_one")

    own, others = eval_row_tested("0" * 16).split("Rows of `LearnedPrimalDual` in the table")
    assert "| shepp_logan | 64 | 46.23 |" not in own
    assert "| shepp_logan | 64 | 46.23 |" in others
    assert f"`{eval_run}` (another file of this name) |" in others
    assert (
        "(1 of runs not exported here (`make report WEIGHTS=1` exports them), 1 of tests of "
        "another file of this name; `make eval EXP=lpd CKPT=lpd-fan_lowdose` tests this one)"
        in others
    )
    assert (
        "| shepp_logan | 64 | 46.23 |"
        in eval_row_tested(file_digest(entry.path)).split(
            "Rows of `LearnedPrimalDual` in the table"
        )[0]
    )

    text = card_with_check(new_run)  # exported from that run: its rows are the file's
    assert "other weights" not in text
    assert "| ellipses | 64 | 50.00 |" in text and "| shepp_logan | 64 | 46.23 |" in text
    assert "52.75" in text and "31.25" in text


def test_a_weighted_lpd_is_a_variant_of_its_own_name_row_and_card(tmp_path):
    """A dose-aware LPD (``statistical_weights``) is ``LearnedPrimalDual-weighted`` in tables
    (its own row, as TV-WLS beside TV), committed as ``LearnedPrimalDual-weighted.ckpt``,
    loaded as ``lpd-weighted-<setup>`` and carded with its own rows; ``check.csv`` listing it
    under the plain name is refused."""
    import torch

    import learnct
    from learnct.methods import LearnedPrimalDual
    from learnct.methods.checkpoints import read_checkpoint
    from learnct.methods.pretrained import load_pretrained
    from learnct.reporting.weights import verify_weights
    from learnct.run.results import ResultsError

    source = MODELS["lpd-fan_lowdose"].path
    plain = learnct.pretrained("lpd-fan_lowdose")
    weighted = LearnedPrimalDual(plain.operator, statistical_weights=True)
    assert (plain.result_name, weighted.result_name) == (
        "LearnedPrimalDual",
        "LearnedPrimalDual-weighted",
    )
    checkpoint = read_checkpoint(source)
    weighted.adapt_state_dict(checkpoint["state_dict"])  # widened: the plain one's function
    checkpoint["hyper_parameters"]["statistical_weights"] = True
    weights = tmp_path / "fan_lowdose" / "weights"
    weights.mkdir(parents=True)
    torch.save(checkpoint, weights / "LearnedPrimalDual-weighted.ckpt")
    shutil.copy(source.parent / "config.json", weights / "config.json")
    entry = pretrained_models(tmp_path)["lpd-weighted-fan_lowdose"]
    assert (entry.class_name, entry.variant, entry.result_name) == (
        "LearnedPrimalDual",
        "weighted",
        "LearnedPrimalDual-weighted",
    )
    assert load_pretrained(entry.path).result_name == "LearnedPrimalDual-weighted"
    row = {"method": "LearnedPrimalDual", "test_set": "ellipses", "n_images": "64"}
    row = {**row, "psnr": "42.13", "ssim": "0.98", "config": "learnct-train experiment=lpd"}
    command = "learnct-eval experiment=lpd ckpt_path=lpd-weighted-fan_lowdose"
    with open(tmp_path / "fan_lowdose" / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(row))
        writer.writeheader()
        writer.writerows(
            [row, {**row, "method": entry.result_name, "psnr": "43.5", "config": command}]
        )
    header = "method,file,test_set,n_images,psnr,ssim\n"
    check = header + "{}," + f"{entry.path.name},ellipses,4,40,0.9\n"
    (weights / "check.csv").write_text(check.format(entry.result_name))
    text = model_card(entry)
    assert "`LearnedPrimalDual-weighted` (`lpd`)" in text
    assert "| ellipses | 64 | 43.50 |" in text and "42.13" not in text  # not the plain row
    (weights / "check.csv").write_text(check.format("LearnedPrimalDual"))
    with pytest.raises(
        ResultsError,
        match=r"lists LearnedPrimalDual-weighted\.ckpt as "
        r"LearnedPrimalDual, but it holds a LearnedPrimalDual-weighted:",
    ):
        verify_weights(weights)
    # a plain LPD saved under the weighted name would load and be carded as weighted
    shutil.copy(source, weights / "LearnedPrimalDual-weighted.ckpt")
    (weights / "check.csv").write_text(check.format("LearnedPrimalDual-weighted"))
    with pytest.raises(ResultsError, match=r"but it holds a LearnedPrimalDual: export it again"):
        verify_weights(weights)
