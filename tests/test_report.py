"""``make report``: every method's largest (then newest) test run on a setup, as CSV and
Markdown, and the figures rebuilt from those runs."""

from __future__ import annotations

import csv
import json
import os
import time

import pytest

from learnct.reporting.__main__ import main
from learnct.reporting.table import collect_results, write_report
from learnct.run.results import weights_folder_source


def _write(folder, rows, age_s=0.0):
    """A run folder's results.csv with ``rows``, its mtime ``age_s`` seconds in the past."""
    folder.mkdir(parents=True, exist_ok=True)
    fields = [
        "method",
        "physics",
        "test_set",
        "n_images",
        "train_steps",
        "trained_on",
        "psnr",
        "ssim",
        "ms_per_slice",
        "device",
        "commit",
        "run_dir",
        "test_hash",
        "fbp_psnr",
    ]
    with open(folder / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**dict.fromkeys(fields, ""), **r})
    if age_s:
        stamp = time.time() - age_s
        os.utime(folder / "results.csv", (stamp, stamp))


def test_latest_run_per_method_wins_and_other_setups_are_ignored(tmp_path, capsys):
    logs = tmp_path / "logs"
    old = {
        "method": "LearnedPrimalDual",
        "physics": "fan_lowdose",
        "test_set": "ellipses",
        "psnr": "30.0",
        "ssim": "0.8",
    }
    _write(logs / "lpd" / "runs" / "a", [old], age_s=100)
    _write(logs / "lpd" / "runs" / "b", [{**old, "psnr": "32.5", "ssim": "0.9"}])
    _write(
        logs / "fbp" / "runs" / "c",
        [{**old, "method": "FBP", "psnr": "29.6"}, {**old, "method": "FBP", "physics": "fan_mayo"}],
    )
    (logs / "broken" / "runs" / "d").mkdir(parents=True)
    (logs / "broken" / "runs" / "d" / "results.csv").write_text("garbage\n")

    rows, problems = collect_results(logs, "fan_lowdose")
    assert [(r["method"], r["psnr"]) for r in rows] == [
        ("FBP", "29.6"),
        ("LearnedPrimalDual", "32.5"),
    ]
    assert len(problems) == 1 and "broken" in problems[0]

    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(tmp_path / "exp")])
    md = (tmp_path / "exp" / "fan_lowdose" / "results.md").read_text()
    assert "| LearnedPrimalDual | ellipses | - | - | 32.50 | 0.9000 |" in md
    with open(tmp_path / "exp" / "fan_lowdose" / "results.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert "skipped unreadable results" in capsys.readouterr().out


def test_a_row_names_where_its_run_folder_is_now(tmp_path):
    """A run trained in a worktree (or on another machine) and copied under ``logs/`` keeps
    the run_dir it was written with; the table names the folder the report found it in."""
    logs = tmp_path / "logs"
    row = {"physics": "fan_lowdose", "test_set": "ellipses", "psnr": "30.0", "ssim": "0.8"}
    moved = logs / "lpd" / "runs" / "a"
    _write(moved, [{**row, "method": "LearnedPrimalDual", "run_dir": "/elsewhere/runs/a"}])
    rows, _ = collect_results(logs, "fan_lowdose")
    assert [r["run_dir"] for r in rows] == [str(moved)]


def test_each_row_names_the_command_that_made_its_run(tmp_path):
    logs = tmp_path / "logs"
    row = {"physics": "fan_mayo", "test_set": "folder", "psnr": "37.1", "ssim": "0.92"}
    evaluated = logs / "lpd_mayo" / "runs" / "a"
    _write(evaluated, [{**row, "method": "LearnedPrimalDual"}])
    (evaluated / ".hydra").mkdir()
    (evaluated / ".hydra" / "overrides.yaml").write_text(
        "- experiment=lpd\n- ckpt_path=w/lpd.ckpt\n- tags=[lpd,fan_mayo]\n- physics=fan_mayo\n"
    )
    (evaluated / "config.json").write_text(json.dumps({"train": False}))
    trained = logs / "fbp_mayo" / "runs" / "b"
    _write(trained, [{**row, "method": "FBP", "psnr": "36.0"}])
    (trained / ".hydra").mkdir()
    (trained / ".hydra" / "overrides.yaml").write_text("- experiment=fbp\n- model.filter=hann\n")
    (trained / "config.json").write_text(json.dumps({"train": True}))
    _write(logs / "tv_mayo" / "runs" / "c", [{**row, "method": "TV", "psnr": "39.6"}])

    main(["--setup", "fan_mayo", "--logs", str(logs), "--out", str(tmp_path / "exp")])
    with open(tmp_path / "exp" / "fan_mayo" / "results.csv") as fh:
        config = {r["method"]: r["config"] for r in csv.DictReader(fh)}
    assert config == {
        "FBP": "learnct-train experiment=fbp model.filter=hann",
        "LearnedPrimalDual": "learnct-eval experiment=lpd ckpt_path=w/lpd.ckpt "
        "'tags=[lpd,fan_mayo]' physics=fan_mayo",
        "TV": "",  # no Hydra folder: nothing to say
    }
    md = (tmp_path / "exp" / "fan_mayo" / "results.md").read_text()
    assert "| `learnct-train experiment=fbp model.filter=hann` |" in md
    assert md.rstrip().endswith("| TV | folder | - | - | 39.60 | 0.9200 | - |  |  | - |")


def test_a_small_check_run_never_replaces_a_larger_test_and_exclude_skips_runs(tmp_path, capsys):
    """The row with the most test images wins (the newest of equals); --exclude drops runs."""
    logs = tmp_path / "logs"
    row = {
        "method": "FBPUNet",
        "physics": "fan_lowdose",
        "test_set": "ellipses",
        "psnr": "39.16",
        "ssim": "0.95",
        "n_images": "64",
        "train_steps": "100000",
    }
    _write(logs / "fbpunet" / "runs" / "a", [row], age_s=100)
    # newer, but a 4-image check of the same weights
    _write(logs / "eval_fbpunet" / "runs" / "b", [{**row, "psnr": "40.90", "n_images": "4"}])
    rows, problems = collect_results(logs, "fan_lowdose")
    assert [r["psnr"] for r in rows] == ["39.16"] and not problems

    # a newer run on the full 64 images replaces it, also where its folder sorts first
    _write(logs / "fbpunet" / "runs" / "0", [{**row, "psnr": "39.50"}])
    assert [r["psnr"] for r in collect_results(logs, "fan_lowdose")[0]] == ["39.50"]
    _write(logs / "fbpunet" / "runs" / "0", [{**row, "psnr": "39.50"}], age_s=101)
    assert [r["psnr"] for r in collect_results(logs, "fan_lowdose")[0]] == ["39.16"]
    os.utime(logs / "fbpunet" / "runs" / "0" / "results.csv")  # newest again
    # a row that does not say how many images it has never beats one that does
    _write(logs / "old" / "runs" / "e", [{**row, "psnr": "45.00", "n_images": ""}])
    assert [r["psnr"] for r in collect_results(logs, "fan_lowdose")[0]] == ["39.50"]

    # --exclude: a run folder, a folder above runs (with or without a slash), a glob
    for exclude, psnr in [
        (["fbpunet/runs/0", "old"], "39.16"),
        (["fbpunet/", "old/runs"], "40.90"),
        (["fbpunet/*", "old/*/e"], "40.90"),
        (["eval_*", "fbpunet/runs/0", "old"], "39.16"),
    ]:
        rows, problems = collect_results(logs, "fan_lowdose", exclude)
        assert [r["psnr"] for r in rows] == [psnr] and not problems, exclude
    rows, problems = collect_results(logs, "fan_lowdose", ["old", "nothing_*"])
    assert [r["psnr"] for r in rows] == ["39.50"]
    assert len(problems) == 1 and "'nothing_*' matched no run folder" in problems[0]

    exclude = ["--exclude", "fbpunet/runs/0", "--exclude", "old", "--exclude", "nothing_*"]
    main(["--logs", str(logs), "--out", str(tmp_path / "exp"), "--no-figure", *exclude])
    out = capsys.readouterr().out
    assert "| FBPUNet | ellipses | 64 | 100,000 | 39.16 |" in out  # steps: the paper's 100k
    assert "--exclude 'nothing_*' matched no run folder" in out


def test_figures_use_each_methods_run_with_the_most_test_images(tmp_path, monkeypatch):
    import learnct.reporting.run_methods
    import learnct.run.build
    from learnct.reporting import outputs

    rows = [
        {"method": "FBP", "test_set": "ellipses", "n_images": "64", "_folder": "fbp"},
        {"method": "FBP", "test_set": "folder", "n_images": "2", "_folder": "ct_fbp"},
        {"method": "TV", "test_set": "ellipses", "n_images": "4", "_folder": "tv_check"},
        {"method": "TV", "test_set": "shepp_logan", "n_images": "64", "_folder": "tv"},
        # equal counts: the first test set in name order (rows come sorted by test set)
        {"method": "LearnedPrimalDual", "test_set": "ellipses", "n_images": "8", "_folder": "a"},
        {"method": "LearnedPrimalDual", "test_set": "folder", "n_images": "8", "_folder": "b"},
    ]
    loaded = []
    monkeypatch.setattr(learnct.reporting.run_methods, "load_run_config", lambda folder: {})
    monkeypatch.setattr(learnct.run.build, "build_physics", lambda cfg: ("preset", "operator"))
    monkeypatch.setattr(
        learnct.reporting.run_methods,
        "load_run_method",
        lambda folder, op: loaded.append(folder.name),
    )
    outputs.load_methods(rows)
    assert loaded == ["fbp", "tv", "a"]


def test_a_report_write_failing_half_way_keeps_the_previous_tables(tmp_path):
    class Unwritable:  # the CSV writer fails when it reaches it, as a full disk would
        def __str__(self):
            raise OSError("No space left on device")

    row = {"method": "FBP", "test_set": "ellipses", "psnr": "30.1", "ssim": "0.8"}
    row["ms_per_slice"] = "1.0"
    write_report([row], "fan_lowdose", tmp_path)
    folder = tmp_path / "fan_lowdose"
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    rows = [{**row, "test_set": f"set{i}"} for i in range(2000)]  # more than a write buffer
    with pytest.raises(OSError, match="No space left"):
        write_report([*rows, {**row, "test_hash": Unwritable()}], "fan_lowdose", tmp_path)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before  # no temporary left


def test_rows_tested_on_different_data_are_flagged_with_their_fbp_psnr(tmp_path, capsys):
    """LPD tested at another dose (another test_hash) beside FBP: the table says the rows'
    data differ and shows each one's FBP PSNR; a test set with one hash gets no note."""
    logs, out = tmp_path / "logs", tmp_path / "experiments"
    row = {"physics": "fan_lowdose", "n_images": "64", "ssim": "0.9"}
    for name, method, psnr, test_hash, fbp in (
        ("fbp", "FBP", "30.0", "aaaa1111bbbb", "30.0"),
        ("lpd", "LearnedPrimalDual", "36.0", "cccc2222dddd", "21.0"),
    ):
        _write(
            logs / name / "runs" / "a",
            [
                {
                    **row,
                    "method": method,
                    "test_set": "ellipses",
                    "psnr": psnr,
                    "test_hash": test_hash,
                    "fbp_psnr": fbp,
                },
                {
                    **row,
                    "method": method,
                    "test_set": "shepp_logan",
                    "psnr": psnr,
                    "test_hash": "eeee",
                    "fbp_psnr": "25.0",
                },
            ],
        )
    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out), "--no-figure"])
    note = (
        "ellipses: the rows were tested on 2 versions of the test data (test_hash "
        "aaaa1111: FBP (FBP 30.00 dB); cccc2222: LearnedPrimalDual (FBP 21.00 dB))"
    )
    assert f"warning: {note}" in capsys.readouterr().out
    text = (out / "fan_lowdose" / "results.md").read_text()
    assert f"- {note}" in text and "shepp_logan: the rows" not in text
    with open(out / "fan_lowdose" / "results.csv", newline="") as fh:
        assert {r["fbp_psnr"] for r in csv.DictReader(fh)} == {"30.00", "21.00", "25.00"}


def test_no_results_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        main(["--setup", "fan_lowdose", "--logs", str(tmp_path), "--out", str(tmp_path)])
    assert err.value.code == 1
    assert "run make train EXP=<method>" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--setup", "nope"])


# ---- figures: comparison.png and the dose curve from runs made here --------------------------


def test_zoom_window_finds_low_contrast_detail_not_the_rim():
    import torch

    from learnct.evaluation import zoom_window

    image = torch.zeros(64, 64)
    image[4:60, 4:60] = 1.0  # a bright "skull" outline
    image[8:56, 8:56] = 0.2  # soft tissue
    image[40:44, 14:18] = 0.25  # a small low-contrast lesion
    r, c, size = zoom_window(image)
    assert size == 16
    assert r <= 40 and r + size >= 44 and c <= 14 and c + size >= 18


def test_comparison_figure_grey_window(tmp_path, monkeypatch):
    """Full images and zooms use the given window (CT soft tissue); by default the truth's
    range."""
    import torch
    from matplotlib.axes import Axes

    from learnct.reporting import comparison_figure

    ranges = []
    real = Axes.imshow

    def record(self, data, *args, **kwargs):
        ranges.append((kwargs.get("vmin"), kwargs.get("vmax")))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Axes, "imshow", record)
    truth = torch.linspace(0.0, 2.0, 32 * 32).reshape(32, 32)
    recon = [("FBP", truth + 0.01)]
    comparison_figure(truth, recon, tmp_path / "a.png", window=(0.8, 1.2))
    comparison_figure(truth, recon, tmp_path / "b.png")
    # per figure: truth (3 panels: image, -, zoom) then FBP (image, error, zoom)
    full = [ranges[i] for i in (0, 2, 5, 7)]
    assert full[:2] == [(0.8, 1.2), (0.8, 1.2)]
    assert full[2:] == [(0.0, 2.0), (0.0, 2.0)]
    assert [ranges[i] for i in (1, 4)] == [(0.8, 1.2)] * 2  # the zooms: --window too
    with pytest.raises(ValueError, match="lo < hi"):
        comparison_figure(truth, recon, tmp_path / "c.png", window=(1.2, 0.8))
    for bad in ("1.2,0.8", "-inf,1", "0.8", "a,b"):
        with pytest.raises(SystemExit) as err:
            main(["--window", bad, "--logs", str(tmp_path), "--out", str(tmp_path)])
        assert err.value.code == 2  # argparse's usage error, not "no results"


def test_strip_checkpoint_narrows_weights_but_not_scalars_or_overflowing_tensors(tmp_path):
    import torch

    from learnct.reporting.weights import strip_checkpoint

    weights = torch.randn(64)
    state = {
        "w": weights,
        "op_norm": torch.tensor(70_000.0),  # a scalar (||A||): kept, though float16 overflows
        "huge": torch.tensor([1e6, 2.0]),  # would be inf in float16: kept
        "count": torch.tensor([3, 4]),
    }
    source = tmp_path / "full.ckpt"
    torch.save({"state_dict": state, "optimizer_states": [{"m": torch.ones(1000)}]}, source)
    slim = torch.load(
        strip_checkpoint(source, tmp_path / "slim.ckpt", dtype=torch.float16), weights_only=True
    )
    assert set(slim) == {"state_dict"}  # the optimizer state is gone
    got = slim["state_dict"]
    assert got["w"].dtype == torch.float16
    torch.testing.assert_close(got["w"].float(), weights, rtol=1e-3, atol=1e-3)
    assert got["op_norm"].dtype == torch.float32 and got["op_norm"].item() == 70_000.0
    assert got["huge"].dtype == torch.float32
    assert torch.equal(got["count"], state["count"])


def test_exporting_unchanged_weights_leaves_the_file_and_its_bytes_alone(tmp_path):
    """Re-exports of the same weights must not churn committed files; new weights do change."""
    import torch

    from learnct.reporting.weights import strip_checkpoint

    source = tmp_path / "run" / "best.ckpt"
    source.parent.mkdir()
    torch.save({"state_dict": {"w": torch.arange(6.0)}, "hyper_parameters": {"n": 3}}, source)
    target = tmp_path / "weights" / "LPD.ckpt"
    strip_checkpoint(source, target, dtype=torch.float16)
    first = target.read_bytes()
    os.utime(target, (0, 0))
    strip_checkpoint(source, target, dtype=torch.float16)
    assert target.stat().st_mtime == 0  # equal entries: not rewritten
    target.unlink()
    strip_checkpoint(source, target, dtype=torch.float16)
    assert target.read_bytes() == first  # written afresh: the same bytes
    assert not list(target.parent.glob(".strip-*"))  # no staging folder left behind

    torch.save({"state_dict": {"w": torch.arange(6.0) + 1}, "hyper_parameters": {"n": 3}}, source)
    strip_checkpoint(source, target, dtype=torch.float16)
    got = torch.load(target, weights_only=True)["state_dict"]["w"]
    assert torch.equal(got, (torch.arange(6.0) + 1).half())
    # over max_mb in float32: stored in float16, so the float16 file above stays as it is
    os.utime(target, (0, 0))
    strip_checkpoint(source, target, max_mb=1e-6)
    assert target.stat().st_mtime == 0
    strip_checkpoint(source, target)  # float32 differs from the stored float16: rewritten
    assert torch.load(target, weights_only=True)["state_dict"]["w"].dtype == torch.float32


@pytest.fixture
def train_run(compose_config, run_config):
    """``train_run(folder, overrides)``: a run of the train config with checkpoints and 2
    validation and test images, in ``folder``."""

    def train_run(folder, overrides):
        small = [
            "callbacks=default",
            "callbacks.progress_bar=null",
            "data.val_size=2",
            "data.test_size=2",
            "data.batch_size=1",
        ]
        return run_config(compose_config("train", [*small, *overrides], folder))

    return train_run


@pytest.mark.slow
def test_report_draws_every_method_and_the_dose_curve(tmp_path, capsys, train_run):
    from matplotlib.image import imread

    logs, out = tmp_path / "logs", tmp_path / "experiments"
    train_run(logs / "fbp" / "runs" / "a", ["experiment=fbp"])
    lgd = ["experiment=lgd", "model.n_iter=1", "trainer.max_steps=2"]
    train_run(logs / "lgd" / "runs" / "b", [*lgd, "trainer.val_check_interval=2"])
    args = ["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out)]
    main([*args, "--dose", "--photons", "300,1e5", "--dose-images", "2", "--weights"])
    folder = out / "fan_lowdose"
    height, width = imread(folder / "comparison.png").shape[:2]
    assert width / height > 0.8  # truth + FBP + LGD: 3 columns of 3 rows (2 columns: ~0.6)
    assert "left out" not in capsys.readouterr().out
    with open(folder / "dose_curve.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["method"], float(r["photons"])) for r in rows} == {
        (m, p) for m in ("FBP", "LearnedGradientDescent") for p in (300.0, 1e5)
    }
    fbp = {float(r["photons"]): float(r["psnr"]) for r in rows if r["method"] == "FBP"}
    assert fbp[1e5] > fbp[300] + 3  # 300x the photons: much less noise
    assert all(r["n_images"] == "2" and r["test_set"] == "ellipses" for r in rows)
    assert (folder / "dose_curve.png").stat().st_size > 10_000

    # the shipped weights: stripped, reloadable, and they reproduce their check rows
    from learnct.reporting.weights import verify_weights

    weights = folder / "weights"
    assert sorted(p.name for p in weights.iterdir()) == [
        "LearnedGradientDescent.ckpt",
        "LearnedGradientDescent.md",  # its model card
        "check.csv",
        "config.json",
    ]
    # the card shows the exported run's table and dose rows (each file names its runs)
    from learnct.run.provenance import repository_path

    run = repository_path(logs / "lgd" / "runs" / "b")
    assert {r["run_dir"] for r in rows if r["method"] == "LearnedGradientDescent"} == {run}
    card = (weights / "LearnedGradientDescent.md").read_text()
    assert "Against dose" in card and "| 300 | ellipses | 2 |" in card
    assert "other weights" not in card and "No row" not in card
    checked = verify_weights(weights)
    # FBP has no weights but its check rows too (rebuilt from config.json's methods.FBP)
    assert sorted((row["method"], row["file"], row["test_set"]) for row, _, _ in checked) == [
        ("FBP", "", "ellipses"),
        ("FBP", "", "shepp_logan"),
        ("LearnedGradientDescent", "LearnedGradientDescent.ckpt", "ellipses"),
        ("LearnedGradientDescent", "LearnedGradientDescent.ckpt", "shepp_logan"),
    ]
    for row, psnr, ssim in checked:
        assert psnr == pytest.approx(float(row["psnr"]), abs=1e-3)
        assert ssim == pytest.approx(float(row["ssim"]), abs=1e-4)
    ckpt = weights / "LearnedGradientDescent.ckpt"
    full = next((logs / "lgd" / "runs" / "b" / "checkpoints").glob("step_*.ckpt"))
    assert ckpt.stat().st_size < full.stat().st_size  # no optimizer state
    ev = train_run(
        tmp_path / "ev",
        ["experiment=lgd", "model.n_iter=1", "train=false", f"ckpt_path={ckpt}"],
    )
    assert ev.rows[0]["psnr"] > 10  # make eval accepts the shipped checkpoint

    # over --weights-max-mb in float32: stored in float16, checked as stored; over it in
    # float16 too: left out, and check.csv with it
    import torch

    fp32_mb = ckpt.stat().st_size / 2**20
    capsys.readouterr()
    main([*args, "--no-figure", "--weights", "--weights-max-mb", f"{fp32_mb * 0.8}"])
    state = torch.load(ckpt, weights_only=True)["state_dict"]
    weights_only = [v for v in state.values() if v.is_floating_point() and v.numel() > 1]
    assert {v.dtype for v in weights_only} == {torch.float16}  # scalars (||A||) stay float32
    assert ckpt.stat().st_size < 0.8 * fp32_mb * 2**20
    for row, psnr, _ in verify_weights(weights):
        assert psnr == pytest.approx(float(row["psnr"]), abs=1e-3)
    main([*args, "--no-figure", "--weights", "--weights-max-mb", f"{fp32_mb * 0.2}"])
    assert "LearnedGradientDescent.ckpt left out" in capsys.readouterr().out
    # the checkpoint and its check rows are gone (its model card is left: model_cards' call)
    assert not {p.name for p in weights.iterdir()} & {"LearnedGradientDescent.ckpt", "check.csv"}


@pytest.mark.slow
def test_a_new_weightless_row_gets_its_check_beside_the_written_ones(tmp_path, capsys, train_run):
    """A TV-WLS run reported beside written rows whose runs are not here: ``--weights`` adds
    its check rows (measured) and model section and leaves every other check row as written;
    a run on other data is refused (its check would measure another test set)."""
    from learnct.reporting.weights import verify_weights

    logs, fresh, out = tmp_path / "logs", tmp_path / "fresh", tmp_path / "experiments"
    train_run(logs / "fbp" / "runs" / "a", ["experiment=fbp"])
    lgd = ["experiment=lgd", "model.n_iter=1", "trainer.max_steps=2"]
    train_run(logs / "lgd" / "runs" / "b", [*lgd, "trainer.val_check_interval=2"])
    args = ["--setup", "fan_lowdose", "--out", str(out), "--no-figure", "--weights"]
    main([*args, "--logs", str(logs)])
    weights = out / "fan_lowdose" / "weights"
    written = (weights / "check.csv").read_text().splitlines()
    assert len(written) == 5  # header + FBP and LGD on ellipses and Shepp-Logan
    from learnct.run.provenance import repository_path

    with open(weights / "check.csv", newline="") as fh:  # each checkpoint's source run
        exported = {(r["method"], r["run_dir"]) for r in csv.DictReader(fh)}
    run = repository_path(logs / "lgd" / "runs" / "b")
    assert exported == {("FBP", ""), ("LearnedGradientDescent", run)}

    train_run(fresh / "tv_wls" / "runs" / "c", ["experiment=tv_wls", "model.iterations=5"])
    capsys.readouterr()
    main([*args, "--logs", str(fresh)])
    assert "not redrawn: FBP, LearnedGradientDescent" in capsys.readouterr().out
    lines = (weights / "check.csv").read_text().splitlines()
    assert lines[: len(written)] == written  # the written rows stay as they were
    checked = verify_weights(weights)
    new = [(row, psnr) for row, psnr, _ in checked if row["method"] == "TV-WLS"]
    assert sorted(row["test_set"] for row, _ in new) == ["ellipses", "shepp_logan"]
    for row, psnr in new:
        assert row["file"] == "" and psnr == pytest.approx(float(row["psnr"]), abs=1e-3)
    fbp = {r["test_set"]: float(r["psnr"]) for r, _, _ in checked if r["method"] == "FBP"}
    assert {r["test_set"]: float(r["psnr"]) for r, _ in new} != fbp  # TV-WLS measured
    stored = json.loads((weights / "config.json").read_text())["methods"]["TV-WLS"]
    assert stored["data_term"] == "wls" and stored["iterations"] == 5

    other = tmp_path / "other" / "tv_wls" / "runs" / "d"
    train_run(other, ["experiment=tv_wls", "model.iterations=5", "seed=1"])
    with pytest.raises(SystemExit):
        main([*args, "--logs", str(tmp_path / "other")])
    assert "its data, seed differ from" in capsys.readouterr().err
    assert (weights / "check.csv").read_text().splitlines() == lines


def test_report_leaves_out_a_run_whose_checkpoint_is_gone(tmp_path, capsys, train_run):
    from matplotlib.image import imread

    logs, out = tmp_path / "logs", tmp_path / "experiments"
    lgd = ["experiment=lgd", "model.n_iter=1", "trainer.max_steps=2"]
    train_run(logs / "lgd" / "runs" / "b", [*lgd, "trainer.val_check_interval=2"])
    for ckpt in (logs / "lgd" / "runs" / "b" / "checkpoints").glob("*.ckpt"):
        ckpt.unlink()
    train_run(logs / "fbp" / "runs" / "a", ["experiment=fbp"])
    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out)])
    text = capsys.readouterr().out
    assert "left out of the figures: LearnedGradientDescent" in text
    assert "its tested checkpoint checkpoints/step_" in text and "no longer exists" in text
    height, width = imread(out / "fan_lowdose" / "comparison.png").shape[:2]
    assert width / height < 0.75  # truth + FBP only
    assert "| LearnedGradientDescent |" in (out / "fan_lowdose" / "results.md").read_text()


def test_a_smaller_run_never_replaces_a_written_row(tmp_path, capsys):
    """``make report`` in a fresh clone with a 4-image smoke run: the committed 64-image rows
    stay (and the figures are not redrawn to match a different table); a run at least as large
    replaces its row; ``--replace`` writes the runs as they are; numbers come rounded."""
    logs, fresh, out = tmp_path / "logs", tmp_path / "fresh_logs", tmp_path / "experiments"
    row = {"physics": "fan_lowdose", "test_set": "ellipses", "ssim": "0.9"}
    for method, psnr in (("LPD", "42.1"), ("TV", "38.1")):
        _write(
            logs / method / "runs" / "a",
            [{**row, "method": method, "n_images": "64", "psnr": psnr}],
        )
    report = ["--setup", "fan_lowdose", "--out", str(out)]
    main([*report, "--logs", str(logs), "--no-figure"])
    committed = (out / "fan_lowdose" / "results.csv").read_text()
    smoke = fresh / "lpd" / "runs" / "smoke"
    _write(smoke, [{**row, "method": "LPD", "n_images": "4", "psnr": "33.123456"}])
    capsys.readouterr()
    main([*report, "--logs", str(fresh)])
    printed = capsys.readouterr().out
    assert (out / "fan_lowdose" / "results.csv").read_text() == committed
    assert f"kept the written row of LPD on ellipses (64 images) over {smoke} (4 images)" in printed
    assert "kept the written row of TV on ellipses (64 images) (--replace" in printed
    assert "figures, dose curve and weights not redrawn: LPD, TV kept their written rows" in printed
    assert not (out / "fan_lowdose" / "comparison.png").exists()
    _write(
        fresh / "lpd" / "runs" / "big",
        [{**row, "method": "LPD", "n_images": "64", "psnr": "42.345678"}],
    )
    main([*report, "--logs", str(fresh), "--no-figure"])
    rows = {r["method"]: r for r in csv.DictReader(open(out / "fan_lowdose" / "results.csv"))}
    assert rows["LPD"]["psnr"] == "42.35" and rows["TV"]["psnr"] == "38.10"  # rounded; TV kept
    (fresh / "lpd" / "runs" / "big" / "results.csv").unlink()
    main([*report, "--logs", str(fresh), "--no-figure", "--replace"])
    rows = list(csv.DictReader(open(out / "fan_lowdose" / "results.csv")))
    assert [(r["method"], r["psnr"]) for r in rows] == [("LPD", "33.12")]  # deliberately
    # a written table that cannot be read (a merge conflict's marker for a header) is refused,
    # not overwritten with the runs' rows alone
    table = out / "fan_lowdose" / "results.csv"
    conflicted = "<<<<<<< HEAD\n" + table.read_text()
    table.write_text(conflicted)
    with pytest.raises(SystemExit):
        main([*report, "--logs", str(fresh), "--no-figure"])
    assert "cannot be read" in capsys.readouterr().err and table.read_text() == conflicted


def test_a_committed_full_schedule_is_not_replaced_by_a_shorter_local_run(tmp_path, capsys):
    """A written row that records its training steps is replaced only by a run that trained as
    many: an old 2k-step local LPD must not take the 100k-step row's place."""
    out, logs = tmp_path / "experiments", tmp_path / "logs"
    row = {"physics": "fan_lowdose", "test_set": "ellipses", "ssim": "0.9", "n_images": "64"}
    _write(
        logs / "paper" / "runs" / "a",
        [{**row, "method": "LPD", "psnr": "38.7", "train_steps": "100000"}],
    )
    report = ["--setup", "fan_lowdose", "--out", str(out), "--no-figure"]
    main([*report, "--logs", str(logs)])
    table = out / "fan_lowdose" / "results.csv"
    for steps, psnr in (("2000", "30.4"), ("", "30.5")):
        old = tmp_path / f"old_{steps}"
        _write(
            old / "lpd" / "runs" / "b",
            [{**row, "method": "LPD", "psnr": psnr, "train_steps": steps}],
        )
        capsys.readouterr()
        main([*report, "--logs", str(old)])
        assert next(csv.DictReader(open(table)))["psnr"] == "38.70"
        assert "kept the written row of LPD on ellipses (64 images, 100000 steps) over" in (
            capsys.readouterr().out
        )
    longer = tmp_path / "longer" / "lpd" / "runs" / "c"
    _write(longer, [{**row, "method": "LPD", "psnr": "39.1", "train_steps": "120000"}])
    main([*report, "--logs", str(tmp_path / "longer")])
    assert next(csv.DictReader(open(table)))["psnr"] == "39.10"
    assert f"replaced the written row of LPD on ellipses with {longer}" in capsys.readouterr().out


def test_an_unreadable_committed_checkpoint_ends_the_report_with_a_clear_error(tmp_path, capsys):
    """The model cards come last: a committed checkpoint that cannot be read (truncated, a Git
    LFS pointer) ends ``make report`` with one line naming it, after the table is written."""
    out, logs = tmp_path / "experiments", tmp_path / "logs"
    row = {"physics": "fan_lowdose", "test_set": "ellipses", "ssim": "0.9", "n_images": "4"}
    _write(logs / "tv" / "runs" / "a", [{**row, "method": "TV", "psnr": "38.1"}])
    (out / "fan_lowdose" / "weights").mkdir(parents=True)
    (out / "fan_lowdose" / "weights" / "LearnedPrimalDual.ckpt").write_bytes(b"truncated")
    args = ["--setup", "fan_lowdose", "--out", str(out), "--logs", str(logs), "--no-figure"]
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 1 and (out / "fan_lowdose" / "results.csv").is_file()
    err = capsys.readouterr().err
    assert "the model cards were not written" in err and "LearnedPrimalDual.ckpt" in err


def test_with_no_new_runs_the_written_table_is_re_rendered_rounded(tmp_path, monkeypatch, capsys):
    """``make report`` with no runs of a setup re-renders its committed table through the one
    writer: numbers rounded, run folders relative to the repository, every other cell as it
    was, the figures left alone."""
    monkeypatch.chdir(tmp_path)  # the repository
    out = tmp_path / "experiments" / "fan_mayo"
    out.mkdir(parents=True)
    (out / "comparison.png").write_bytes(b"figure")
    command = "learnct-eval experiment=lpd ckpt_path=/elsewhere/lpd.ckpt physics=fan_mayo"
    written = {
        "method": "LearnedPrimalDual",
        "test_set": "folder",
        "n_images": "2",
        "psnr": "37.125099182128906",
        "ssim": "0.9218305349349976",
        "ms_per_slice": "27452.240234375",
        "device": "cpu",
        "commit": "aebf53c",
        "run_dir": str(tmp_path / "logs" / "lpd_mayo" / "runs" / "2026-11-26_14-01-03"),
        "test_hash": "b5c7c17de21fa70b",
        "torch_version": "2.13.0+cpu",
        "lightning_version": "2.6.6",
        "config": command,
    }
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(written))
        writer.writeheader()
        writer.writerow(written)
    (tmp_path / "logs").mkdir()
    main(["--setup", "fan_mayo", "--logs", "logs", "--out", "experiments"])
    (row,) = csv.DictReader(open(out / "results.csv", newline=""))
    rounded = {"psnr": "37.13", "ssim": "0.9218", "ms_per_slice": "27452.2"}
    relative = "logs/lpd_mayo/runs/2026-11-26_14-01-03"
    # columns of the results schema the old table lacks come empty
    assert row == {
        **written,
        **rounded,
        "run_dir": relative,
        "learnct_version": "",
        "train_steps": "",
        "trained_on": "",
        "weights_hash": "",
        "fbp_psnr": "",
    }
    assert (
        f"| 37.13 | 0.9218 | 27452.2 | cpu | aebf53c | `{command}` |"
        in (out / "results.md").read_text()
    )
    assert (out / "comparison.png").read_bytes() == b"figure"
    assert "figures, dose curve and weights not redrawn" in capsys.readouterr().out


def _disc_slices(folder):
    """Two 64 x 64 DICOM slices of 2 mm pixels in ``folder``: water discs of 40 and 25 mm in
    air (the real-CT source reads them at their physical size)."""
    import sys
    from pathlib import Path

    import numpy as np

    sys.path.insert(0, str(Path(__file__).parent / "data"))
    from dicom_files import write_dicom

    folder.mkdir(parents=True)
    c = (np.arange(64) - 31.5) * 2.0
    for k, radius in enumerate((40.0, 25.0)):
        disc = np.hypot(c[:, None], c[None, :]) <= radius
        stored = np.where(disc, 1024 + 40, 24).astype(np.int16)
        write_dicom(folder / f"s{k}.dcm", stored, spacing=(2.0, 2.0))


def test_dose_curve_on_real_ct_slices(tmp_path):
    """--dose-real-ct: every slice of ROOT/test (DICOM at its physical size) at each dose."""
    from omegaconf import OmegaConf

    from learnct.methods import FBP
    from learnct.physics import PhysicsPreset, RayTransform
    from learnct.physics.geometry import FanBeamGeometry
    from learnct.reporting.outputs import write_dose_curve
    from learnct.reporting.run_methods import RunMethod

    _disc_slices(tmp_path / "ct" / "test")
    geometry = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=64, pixel_size=4.0)
    preset, operator = PhysicsPreset("small", geometry), RayTransform(geometry)
    cfg = OmegaConf.create({"data": {"_target_": "learnct.data.CTDataModule", "seed": 0}})
    fbp = RunMethod("FBP", tmp_path, cfg, FBP(operator), None)
    csv_path, png = write_dose_curve(
        [fbp], cfg, preset, operator, tmp_path, (300.0, 1e5), 8, folder_root=tmp_path / "ct"
    )
    assert csv_path.name == "dose_curve_real_ct.csv" and png.stat().st_size > 10_000
    with open(csv_path) as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["test_set"], r["n_images"]) for r in rows] == [("folder", "2")] * 2
    assert float(rows[1]["psnr"]) > float(rows[0]["psnr"]) + 3


def test_real_ct_choice_is_made_on_validation_and_written_per_slice(tmp_path):
    """choose_on_validation keeps the option of the best mean validation PSNR; the table
    lists every slice's PSNR and the slice count."""
    import torch

    from learnct.data import CTDataModule
    from learnct.evaluation import score
    from learnct.methods import FBP
    from learnct.physics import PhysicsPreset, RayTransform
    from learnct.physics.geometry import FanBeamGeometry
    from learnct.reporting.real_ct import choose_on_validation, read_real_ct, write_real_ct

    geometry = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=64, pixel_size=8.0)
    preset, operator = PhysicsPreset("small", geometry), RayTransform(geometry)
    dm = CTDataModule(preset, operator, source="ctlike", val_size=3, eval_batch_size=3)
    dm.setup("validate")
    val = [dm.simulate(b) for b in dm.val_dataloader()]
    options = [0.3, 1.0]
    expected = {s: score(FBP(operator, frequency_scaling=s).reconstruct, val) for s in options}
    best = max(options, key=lambda s: expected[s].mean_psnr)
    option, psnr, method, tried = choose_on_validation(
        lambda s: FBP(operator, frequency_scaling=s), options, val
    )
    assert option == best and psnr == pytest.approx(expected[best].mean_psnr)
    assert method.hparams.frequency_scaling == best
    assert [o for o, _ in tried] == options
    assert isinstance(psnr, float) and torch.isfinite(torch.tensor(psnr))
    rows = [
        {"method": "FBP", "chosen": f"frequency_scaling={best}", "val_psnr": psnr,
         "val_grid": "0.3: 20.00; 1.0: 21.00", "n_slices": 2, "psnr": 30.0, "ssim": 0.8,
         "psnr:a.dcm": 29.0, "psnr:b.dcm": 31.0},
    ]  # fmt: skip
    write_real_ct(rows, ["a.dcm", "b.dcm"], tmp_path, 1e4)
    md = (tmp_path / "real_ct.md").read_text()
    assert "(2 slices, 10000 photons" in md and "| 30.00 | 0.800 | 29.00 | 31.00 |" in md
    assert "- FBP: 0.3: 20.00; 1.0: 21.00" in md
    assert read_real_ct(tmp_path) == rows  # what --weights-only keeps, as written


def test_real_ct_weights_rows_label_each_folder_by_its_training_source(tmp_path):
    """Rows of two weights folders, each method labelled with its folder's training source;
    a folder of other physics is refused."""
    import json
    import shutil

    from omegaconf import OmegaConf

    from conftest import REPO_ROOT
    from learnct.data import CTDataModule
    from learnct.evaluation import simulate_test_sets
    from learnct.reporting.real_ct import weights_rows
    from learnct.run import build_physics

    source = REPO_ROOT / "experiments" / "fan_lowdose" / "weights"
    config = json.loads((source / "config.json").read_text())
    folders = []
    for name, data_source in (("a", "ellipses"), ("b", "ctlike")):
        folder = tmp_path / name / "weights"
        folder.mkdir(parents=True)
        shutil.copy(source / "LearnedPrimalDual.ckpt", folder / "LearnedPrimalDual.ckpt")
        config["data"]["source"] = data_source
        (folder / "config.json").write_text(json.dumps(config))
        folders.append(folder)
    preset, operator = build_physics(OmegaConf.create(config))
    dm = CTDataModule(
        preset, operator, source="ctlike", test_source="ctlike", test_size=1, eval_batch_size=1
    )
    dm.setup("test")
    test = simulate_test_sets(dm)["ctlike"]
    rows = weights_rows(folders, operator, test, ["x"], labelled=True)
    assert [(r["method"], r["chosen"]) for r in rows] == [
        ("LearnedPrimalDual (ellipses)", "weights=a/LearnedPrimalDual.ckpt"),
        ("LearnedPrimalDual (ctlike)", "weights=b/LearnedPrimalDual.ckpt"),
    ]
    assert rows[0]["psnr"] == rows[1]["psnr"] == rows[0]["psnr:x"] > 20  # the same weights
    config["physics"]["photons"] = 1000.0
    (folders[1] / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"photons 1000.0 \(10000.0\)\): a real-CT .* one physics"):
        weights_rows(folders, operator, test, ["x"], labelled=True)


@pytest.mark.slow
def test_weights_from_runs_commit_a_setup_without_a_table(tmp_path, train_run):
    """A run's best validation checkpoint becomes a committed model of its own setup name
    (``lgd-<folder>``), checked on its synthetic test set (a folder of slices, not committed,
    gives way to the validation source), with a card that names the training dose range."""
    from learnct.methods.pretrained import pretrained_models
    from learnct.reporting.run_weights import weights_from_runs
    from learnct.reporting.weights import verify_weights

    run = tmp_path / "logs" / "lgd" / "runs" / "b"
    lgd = ["experiment=lgd", "model.n_iter=1", "trainer.max_steps=2"]
    doses = ["data=ctlike", "data.train_photons_range=[1e3,1e5]", "data.test_source=shepp_logan"]
    train_run(run, [*lgd, "trainer.val_check_interval=2", *doses])
    out = tmp_path / "experiments" / "fan_lowdose_ctlike"
    weights_from_runs([run], out, n_images=2)
    weights = out / "weights"
    assert sorted(p.name for p in weights.iterdir()) == [
        "LearnedGradientDescent.ckpt",
        "LearnedGradientDescent.md",
        "check.csv",
        "config.json",
    ]
    checked = verify_weights(weights)
    assert [(row["method"], row["test_set"]) for row, _, _ in checked] == [
        ("LearnedGradientDescent", "shepp_logan")
    ]
    for row, psnr, _ in checked:
        assert psnr == pytest.approx(float(row["psnr"]), abs=1e-3)
    assert list(pretrained_models(tmp_path / "experiments")) == ["lgd-fan_lowdose_ctlike"]
    card = (weights / "LearnedGradientDescent.md").read_text()
    assert "Trained at doses drawn per sample from 1000 to 100000 photons" in card
    assert "| test sets | `shepp_logan` |" in card  # one source, not its letters
    assert "real-CT test set" not in card and "- Not tested on any scan." in card
    assert "- Trained on `ctlike` images: synthetic phantoms, no patient anatomy." in card
    # a real-CT table row that names the checkpoint shows in its card, per slice
    from learnct.reporting.model_cards import model_card
    from learnct.reporting.real_ct import write_real_ct

    row = {"method": "LearnedGradientDescent (ctlike)",
           "chosen": "weights=fan_lowdose_ctlike/LearnedGradientDescent.ckpt", "val_psnr": None,
           "val_grid": "", "n_slices": 2, "psnr": 33.5, "ssim": 0.9, "psnr:a.dcm": 32.0,
           "psnr:b.dcm": 35.0}  # fmt: skip
    write_real_ct([row], ["a.dcm", "b.dcm"], tmp_path / "experiments" / "fan_lowdose", 1e4)
    card = model_card(pretrained_models(tmp_path / "experiments")["lgd-fan_lowdose_ctlike"])
    assert "On the real-CT test set (`fan_lowdose/real_ct.csv`)" in card
    assert "| 2 | 33.50 | 0.900 | 32.00 | 35.00 |" in card
    assert "Not tested on any scan" not in card
    with pytest.raises(ValueError, match="no run folders given"):
        weights_from_runs([], out)
    # the run's results say what its weights trained on, doses included (make report keeps
    # them apart)
    with open(run / "results.csv") as fh:
        trained_on = {r["trained_on"] for r in csv.DictReader(fh)}
    assert trained_on == {"ctlike at 1000-100000 photons"}
    # one weights folder, one physics: a run at another dose is refused, naming the dose
    other = tmp_path / "logs" / "lpd" / "runs" / "c"
    lpd = ["experiment=lpd", "model.n_iter=1", "trainer.max_steps=1"]
    train_run(other, [*lpd, "trainer.val_check_interval=1", *doses, "physics.photons=1000"])
    with pytest.raises(
        ValueError, match=r"runs/c: its physics differ .*photons 1000.0 \(10000.0\)"
    ):
        weights_from_runs([run, other], tmp_path / "experiments" / "mixed", n_images=2)


def test_weights_are_checked_on_test_sets_that_the_repository_can_make_again():
    """Synthetic test sets are the check's; a folder of slices (not committed) gives way to the
    validation source."""
    from omegaconf import OmegaConf

    from learnct.reporting.run_weights import _check_on_committed_data

    for test, val, checked in (
        (["ellipses", "shepp_logan"], "ellipses", ["ellipses", "shepp_logan"]),
        ("ctlike", "ctlike", "ctlike"),
        (["shepp_logan", "folder"], "ctlike", "ctlike"),
        ("lodopab", "ellipses", "ellipses"),
    ):
        cfg = OmegaConf.create({"data": {"test_source": test, "val_source": val}})
        _check_on_committed_data(cfg)
        assert OmegaConf.to_container(cfg)["data"]["test_source"] == checked


@pytest.mark.slow
def test_run_weights_replace_and_remeasure(tmp_path, train_run, capsys, monkeypatch):
    """--replace swaps one committed model for a run's, or adds a method not there yet, and
    re-measures every check row; --remeasure rewrites the rows from the committed files alone
    (e.g. after the check data changed)."""
    from learnct.reporting.run_weights import main, replace_weights, weights_from_runs
    from learnct.reporting.weights import verify_weights, write_check

    lgd = ["experiment=lgd", "model.n_iter=1", "data=ctlike", "trainer.val_check_interval=2"]
    first, second, other = (tmp_path / "logs" / "lgd" / "runs" / k for k in ("a", "b", "c"))
    train_run(first, [*lgd, "trainer.max_steps=2"])
    train_run(second, [*lgd, "trainer.max_steps=2", "model.optimizer.lr=0.01"])
    train_run(other, [*lgd, "trainer.max_steps=2", "seed=5"])
    out = tmp_path / "experiments" / "fan_lowdose_ctlike"
    weights_from_runs([first], out, n_images=2)
    weights = out / "weights"
    before = (weights / "LearnedGradientDescent.ckpt").read_bytes()
    old_row = (weights / "check.csv").read_text()
    with pytest.raises(ValueError, match="its data, seed differ from"):
        replace_weights([other], out)  # another check set: refused before anything is written
    assert (weights / "LearnedGradientDescent.ckpt").read_bytes() == before
    lines = replace_weights([second], out)
    assert (weights / "LearnedGradientDescent.ckpt").read_bytes() != before
    assert (weights / "check.csv").read_text() != old_row
    assert len(lines) == 1 and lines[0].startswith("LearnedGradientDescent on ctlike: ")
    for row, psnr, ssim in verify_weights(weights):
        assert (float(row["psnr"]), float(row["ssim"])) == (psnr, ssim)
    from learnct.run.provenance import repository_path

    with open(weights / "check.csv", newline="") as fh:  # the model card's run: the new one
        assert {r["run_dir"] for r in csv.DictReader(fh) if r["file"]} == {repository_path(second)}
    # a tampered row is restored by --remeasure, which takes no runs
    good = (weights / "check.csv").read_text()
    rows = list(csv.DictReader(good.splitlines()))
    write_check(weights / "check.csv", [{**rows[0], "psnr": "99.0"}, *rows[1:]])
    assert main(["--out", str(out), "--remeasure"]) == 0
    assert "99.0 -> " in capsys.readouterr().out
    assert (weights / "check.csv").read_text() == good
    with pytest.raises(SystemExit):
        main(["--out", str(out), "--remeasure", str(second)])
    # a method the folder does not hold yet is added (a schedule that ends after the others),
    # checked on the folder's test sets; the rows there are re-measured, not changed
    lpd = tmp_path / "logs" / "lpd" / "runs" / "a"
    train_run(lpd, ["experiment=lpd", "model.n_iter=1", *lgd[2:], "trainer.max_steps=2"])
    lines = replace_weights([lpd], out)
    assert sorted(p.name for p in weights.glob("*.ckpt")) == [
        "LearnedGradientDescent.ckpt",
        "LearnedPrimalDual.ckpt",
    ]
    assert (weights / "LearnedPrimalDual.md").is_file()
    assert [line.split(":")[0] for line in lines] == [
        "LearnedGradientDescent on ctlike",
        "LearnedPrimalDual on ctlike",
    ]
    assert lines[1].startswith("LearnedPrimalDual on ctlike: (new) -> ")
    checked = verify_weights(weights)
    assert [(row["method"], row["file"], row["n_images"]) for row, _, _ in checked] == [
        ("LearnedGradientDescent", "LearnedGradientDescent.ckpt", "2"),
        ("LearnedPrimalDual", "LearnedPrimalDual.ckpt", "2"),
    ]
    for row, psnr, ssim in checked:
        assert (float(row["psnr"]), float(row["ssim"])) == (psnr, ssim)
    assert checked[0][0]["psnr"] == rows[0]["psnr"]  # LGD's, as --remeasure wrote it
    # an addition that fails (here: interrupted while writing the cards) leaves the folder as
    # it was: check.csv, no checkpoint or card of the added method
    (weights / "LearnedPrimalDual.ckpt").unlink()
    (weights / "LearnedPrimalDual.md").unlink()
    write_check(weights / "check.csv", rows)  # LGD's rows alone
    kept = {p.name: p.read_bytes() for p in weights.iterdir()}

    def interrupted(folder):
        (folder / "weights" / "LearnedPrimalDual.md").write_text("half a card")
        raise KeyboardInterrupt

    monkeypatch.setattr("learnct.reporting.model_cards.write_model_cards", interrupted)
    with pytest.raises(KeyboardInterrupt):
        replace_weights([lpd], out)
    assert {p.name: p.read_bytes() for p in weights.iterdir()} == kept
    monkeypatch.undo()
    # and one whose check fails likewise
    (weights / "LearnedGradientDescent.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"LearnedGradientDescent\.ckpt is truncated or corrupt"):
        replace_weights([lpd], out)
    assert not (weights / "LearnedPrimalDual.ckpt").exists()
    assert (weights / "check.csv").read_bytes() == kept["check.csv"]


def test_real_ct_tv_choice_scores_every_lam_and_iteration_count_of_one_solve():
    """choose_tv_on_validation: the PSNR of each (lam, iterations) equals that of a TV run of
    exactly that many iterations, and the best pair is returned with its method."""
    from learnct.data import CTDataModule
    from learnct.evaluation import score
    from learnct.methods import TV
    from learnct.physics import PhysicsPreset, RayTransform
    from learnct.physics.geometry import FanBeamGeometry
    from learnct.reporting.real_ct import choose_tv_on_validation

    geometry = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=64, pixel_size=8.0)
    preset, operator = PhysicsPreset("small", geometry), RayTransform(geometry)
    dm = CTDataModule(preset, operator, source="ctlike", val_size=3, eval_batch_size=2)
    dm.setup("validate")
    val = [dm.simulate(b) for b in dm.val_dataloader()]

    def make(lam, n):
        return TV(operator, lam=lam, iterations=n, data_term="wls")

    choice, psnr, method, tried = choose_tv_on_validation(make, [1.0, 30.0], [2, 10], val)
    assert [pair for pair, _ in tried] == [(1.0, 2), (1.0, 10), (30.0, 2), (30.0, 10)]
    for (lam, n), value in tried:
        assert value == pytest.approx(score(make(lam, n).reconstruct, val).mean_psnr, abs=1e-4)
    assert psnr == max(v for _, v in tried) and dict(tried)[choice] == psnr
    assert (method.hparams.lam, method.hparams.iterations) == choice
    assert len({round(v, 3) for _, v in tried}) == 4  # the knobs matter at this size


@pytest.mark.parametrize("doses", ["1e3,0.5", "1e3,2e9", "1e3,nan", "1e3,x"])
def test_a_dose_out_of_the_physics_range_is_refused_before_any_work(doses, capsys):
    """The dose curve's doses are checked as a preset checks its photons, all of them at the
    command line (not the fifth after four doses' reconstructions)."""
    with pytest.raises(SystemExit):
        main(["--setup", "fan_lowdose", "--dose", "--photons", doses])
    err = capsys.readouterr().err
    assert "--photons wants doses like 1e3,1e4" in err
    assert "from 1 to 1e+09" in err or "could not convert" in err


def _physics(folder, **physics):
    """A run folder's config.json with the ``physics`` group (fan_lowdose plus ``physics``)."""
    section = {"preset": "fan_lowdose", "backend": "auto", "photons": None, "image_size": None}
    (folder / "config.json").write_text(json.dumps({"physics": {**section, **physics}}))


def test_a_run_at_other_physics_is_left_out_of_the_presets_table(tmp_path, capsys):
    """``physics.photons=1e3`` records the setup's name (``fan_lowdose``) in results.csv; its
    newer, equally large test must not replace the preset's row (another dose, other data),
    nor the committed table's row; the preset's dose written out (1e4) is the preset."""
    logs, out = tmp_path / "logs", tmp_path / "exp"
    row = {"method": "FBP", "physics": "fan_lowdose", "test_set": "ellipses", "n_images": "64"}
    _write(logs / "fbp" / "runs" / "preset", [{**row, "psnr": "29.60"}], age_s=100)
    _physics(logs / "fbp" / "runs" / "preset", photons=10000.0)
    _write(logs / "fbp" / "runs" / "low", [{**row, "psnr": "24.10"}])
    _physics(logs / "fbp" / "runs" / "low", photons=1000.0)
    _write(logs / "fbp" / "runs" / "sparse", [{**row, "psnr": "22.00"}])
    _physics(logs / "fbp" / "runs" / "sparse", n_angles=60)

    rows, problems = collect_results(logs, "fan_lowdose")
    assert [r["psnr"] for r in rows] == ["29.60"]
    assert len(problems) == 2
    assert any("low" in p and "photons 1000.0 (fan_lowdose: 10000.0)" in p for p in problems)
    assert any("sparse" in p and "n_angles 60 (fan_lowdose: 200)" in p for p in problems)

    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out), "--no-figure"])
    (logs / "fbp" / "runs" / "preset" / "results.csv").unlink()  # only the other doses left
    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out), "--no-figure"])
    with open(out / "fan_lowdose" / "results.csv") as fh:
        assert [r["psnr"] for r in csv.DictReader(fh)] == ["29.60"]
    assert "its physics are not the fan_lowdose preset's" in capsys.readouterr().out


def test_real_ct_kept_choices_rebuild_the_chosen_fbp_and_tv(tmp_path):
    """``--keep-choices``: a written row's choice (``chosen``) makes the same method again,
    with its settings and data term, to re-score it on a changed test set."""
    from learnct.physics import RayTransform
    from learnct.physics.geometry import FanBeamGeometry
    from learnct.reporting.real_ct import _classical, _kept_choice

    geometry = FanBeamGeometry(image_size=32, n_angles=40, n_detectors=64, pixel_size=8.0)
    makers = _classical(RayTransform(geometry), 0.02)
    fbp = _kept_choice(
        {"method": "FBP", "chosen": "filter,frequency_scaling=('shepp-logan', 0.5)"}, makers
    )
    assert (fbp.hparams.filter, fbp.hparams.frequency_scaling) == ("shepp-logan", 0.5)
    for name, term in (("TV", "ls"), ("TV-WLS", "wls")):
        tv = _kept_choice({"method": name, "chosen": "lam,iterations=(7.5, 3000)"}, makers)
        assert (tv.hparams.lam, tv.hparams.iterations, tv.hparams.data_term) == (7.5, 3000, term)
    with pytest.raises(ValueError, match="no FBP or TV row makes TV-L1"):
        _kept_choice({"method": "TV-L1", "chosen": "lam,iterations=(7.5, 300)"}, makers)


def test_real_ct_columns_are_slice_paths_unique_across_subfolders(tmp_path):
    """Two series in subfolders that reuse a file name are two columns, not one."""
    import numpy as np

    from learnct.data import FolderDataset
    from learnct.reporting.real_ct import slice_names

    for series in ("a", "b"):
        (tmp_path / "test" / series).mkdir(parents=True)
        np.save(tmp_path / "test" / series / "IM000001.npy", np.zeros((16, 16), np.float32))
    np.save(tmp_path / "test" / "top.npy", np.zeros((16, 16), np.float32))
    slices = FolderDataset(tmp_path / "test", image_size=16)
    assert slice_names(slices) == ["a/IM000001.npy", "b/IM000001.npy", "top.npy"]


def test_a_re_export_keeps_the_check_rows_of_checkpoints_it_did_not_write(tmp_path, monkeypatch):
    """A committed checkpoint whose run did not load this time keeps its check row: every
    committed checkpoint stays checked (and check.csv is not deleted under it)."""
    from types import SimpleNamespace

    from learnct.reporting import weights

    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "LearnedPrimalDual.ckpt").write_bytes(b"committed")
    lpd = {"method": "LearnedPrimalDual", "file": "LearnedPrimalDual.ckpt", "psnr": "40.1"}
    gone = {"method": "FBPUNet", "file": "FBPUNet.ckpt", "psnr": "39.0"}  # its file is gone
    weights.write_check(folder / "check.csv", [lpd, gone])
    tv = {"method": "TV", "file": "", "psnr": "38.1"}
    monkeypatch.setattr(weights, "check_rows", lambda *args: [tv])
    weights.export_weights([SimpleNamespace(checkpoint=None)], folder, datamodule=None)
    rows = weights.read_check_rows(folder)
    assert [(r["method"], r["file"], r["psnr"]) for r in rows] == [
        ("TV", "", "38.1"),
        ("LearnedPrimalDual", "LearnedPrimalDual.ckpt", "40.1"),
    ]
    (folder / "LearnedPrimalDual.ckpt").unlink()
    weights.export_weights([SimpleNamespace(checkpoint=None)], folder, datamodule=None)
    assert not (folder / "check.csv").exists()  # no checkpoint left to check


def test_a_weights_run_with_the_same_measurements_written_otherwise_is_the_same_setup():
    """``check_same_setup`` compares physics by what they measure: the preset's dose written
    out or another backend pass; another dose is refused, naming the physics."""
    from pathlib import Path
    from types import SimpleNamespace

    from omegaconf import OmegaConf

    from learnct.reporting.weights import check_same_setup

    physics = {"preset": "fan_lowdose", "backend": "auto", "photons": None}
    stored = {"physics": physics, "data": {"source": "ellipses"}, "seed": 0}

    def run(**changes):
        cfg = {**stored, "physics": {**physics, **changes}}
        return SimpleNamespace(cfg=OmegaConf.create(cfg), folder=Path("logs/run"))

    check_same_setup(run(photons=10000.0, backend="sparse"), stored, Path("w"), "fix")
    with pytest.raises(ValueError, match=r"logs/run: its physics differ from w/config.json"):
        check_same_setup(run(photons=1000.0), stored, Path("w"), "fix")
    # a dose-aware run into a folder whose config.json predates the dose range (no such key)
    doses = {"source": "ellipses", "train_photons_range": [1e3, 1e5]}
    dose_aware = SimpleNamespace(cfg=OmegaConf.create({**stored, "data": doses}), folder=Path("r"))
    with pytest.raises(ValueError, match=r"r: its data differ from w/config.json"):
        check_same_setup(dose_aware, stored, Path("w"), "fix")
    one_dose = {**stored, "data": {**doses, "train_photons_range": None}}
    check_same_setup(SimpleNamespace(cfg=OmegaConf.create(one_dose), folder=Path("r")), stored,
                     Path("w"), "fix")  # fmt: skip


def test_real_ct_weights_only_keeps_rows_measured_on_the_same_test_data(
    tmp_path, monkeypatch, capsys
):
    """``--weights-only`` keeps FBP and TV rows only where their ``test_hash`` is that of the
    slices simulated now: a row that records none, or another, is refused with the fix
    (``--keep-choices``), which re-scores the kept choice and records the hash."""
    from conftest import REPO_ROOT
    from learnct.reporting.real_ct import main, read_real_ct, write_real_ct

    _disc_slices(tmp_path / "ct" / "test")
    out, names = tmp_path / "out", ["s0.dcm", "s1.dcm"]
    fbp = {"method": "FBP", "chosen": "filter,frequency_scaling=('shepp-logan', 0.5)",
           "val_psnr": 30.0, "val_grid": "", "n_slices": 2, "psnr": 0.0, "ssim": 0.0,
           "psnr:s0.dcm": 0.0, "psnr:s1.dcm": 0.0}  # fmt: skip
    write_real_ct([fbp], names, out, 1e4)  # as written before rows recorded their test data
    monkeypatch.chdir(REPO_ROOT)  # experiments/fan_lowdose/weights
    args = ["--root", str(tmp_path / "ct"), "--out", str(out)]
    with pytest.raises(SystemExit):
        main([*args, "--weights-only"])
    assert "rows of FBP (not recorded) were measured on other test data" in capsys.readouterr().err
    assert main([*args, "--keep-choices"]) == 0
    rescored = {r["method"]: r for r in read_real_ct(out)}
    test_hash = rescored["FBP"]["test_hash"]
    assert len(test_hash) == 16 and rescored["FBP"]["psnr"] > 20
    assert {r["test_hash"] for r in rescored.values()} == {test_hash}
    assert "LearnedPrimalDual" in rescored
    assert main([*args, "--weights-only"]) == 0
    assert {r["method"]: r for r in read_real_ct(out)}["FBP"] == rescored["FBP"]  # kept
    csv_path = out / "real_ct.csv"
    csv_path.write_text(csv_path.read_text().replace(test_hash, "0" * 16, 1))
    with pytest.raises(SystemExit):
        main([*args, "--weights-only"])
    assert f"FBP ({'0' * 16}) were measured on other test data than now (test_hash {test_hash}" in (
        capsys.readouterr().err
    )


def test_weights_trained_on_other_data_are_left_out_of_the_setups_table(tmp_path):
    """A CT-like fine-tune of LPD (``trained_on`` ctlike), newer and as large as the
    ellipse-trained row, does not replace it in a table of ellipse-trained weights (the
    committed weights' ``data.source``); the left-out run is named. A row that records no
    training data (older runs) counts; with no committed weights every row counts."""
    logs = tmp_path / "logs"
    row = {"method": "LearnedPrimalDual", "physics": "fan_lowdose", "test_set": "ellipses"}
    row = {**row, "n_images": "64", "ssim": "0.9"}
    _write(logs / "lpd" / "runs" / "a", [{**row, "psnr": "42.13", "trained_on": "ellipses"}], 100)
    _write(logs / "ctlike_lpd" / "runs" / "b", [{**row, "psnr": "40.00", "trained_on": "ctlike"}])
    rows, problems = collect_results(logs, "fan_lowdose", trained_on="ellipses")
    assert [r["psnr"] for r in rows] == ["42.13"]
    (problem,) = problems
    assert "ctlike_lpd/runs/b: its weights were trained on ctlike data, not ellipses" in problem
    assert [r["psnr"] for r in collect_results(logs, "fan_lowdose")[0]] == ["40.00"]
    _write(logs / "old" / "runs" / "c", [{**row, "psnr": "41.00"}])  # newest, no record
    assert [r["psnr"] for r in collect_results(logs, "fan_lowdose", [], "ellipses")[0]] == ["41.00"]
    # make report takes the kind of data from the committed weights' config.json
    (logs / "old" / "runs" / "c" / "results.csv").unlink()
    out = tmp_path / "exp"
    (out / "fan_lowdose" / "weights").mkdir(parents=True)
    (out / "fan_lowdose" / "weights" / "config.json").write_text('{"data": {"source": "ctlike"}}')
    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out), "--no-figure"])
    with open(out / "fan_lowdose" / "results.csv") as fh:
        assert [(r["psnr"], r["trained_on"]) for r in csv.DictReader(fh)] == [("40.00", "ctlike")]


def test_weights_trained_over_a_dose_range_are_left_out_of_a_one_dose_table(tmp_path):
    """A dose-aware LPD (``data.train_photons_range``), newer and as large as the one-dose row,
    does not take its place in the table of weights trained at the preset's dose, and the
    message names a folder for it; a weights folder trained over that range compares it."""
    logs = tmp_path / "logs"
    row = {"method": "LearnedPrimalDual", "physics": "fan_lowdose", "test_set": "ellipses"}
    row = {**row, "n_images": "64", "ssim": "0.9"}
    _write(logs / "lpd" / "runs" / "a", [{**row, "psnr": "42.13", "trained_on": "ellipses"}], 100)
    doses = "ellipses at 1000-100000 photons"
    _write(logs / "dose_lpd" / "runs" / "b", [{**row, "psnr": "41.00", "trained_on": doses}])
    out = tmp_path / "exp"
    weights = out / "fan_lowdose" / "weights"
    weights.mkdir(parents=True)
    (weights / "config.json").write_text('{"data": {"source": "ellipses"}}')
    trained_on = weights_folder_source(weights)
    assert trained_on == "ellipses"
    rows, (problem,) = collect_results(logs, "fan_lowdose", trained_on=trained_on)
    assert [r["psnr"] for r in rows] == ["42.13"]
    assert f"trained on {doses} data, not ellipses" in problem
    assert "--out experiments/fan_lowdose_ellipses_1000_100000_photons;" in problem
    range_config = '{"data": {"source": "ellipses", "train_photons_range": [1000, 100000.0]}}'
    (weights / "config.json").write_text(range_config)
    assert weights_folder_source(weights) == doses
    rows, _ = collect_results(logs, "fan_lowdose", trained_on=weights_folder_source(weights))
    assert [r["psnr"] for r in rows] == ["41.00"]


def test_rows_say_the_doses_of_the_run_that_trained_their_weights(tmp_path):
    """A row written before checkpoints recorded the dose range says ``ellipses`` for weights
    trained at 1000-100000 photons: the training run's ``config.json`` says the range, so the
    row is left out of the one-dose table as a dose-aware one, and so is the row of an eval run
    that tested a checkpoint of that run (its own config's data are not its weights'
    training); an eval of weights kept outside a run leaves its row as it is."""
    logs = tmp_path / "logs"
    row = {"method": "LearnedPrimalDual", "physics": "fan_lowdose", "test_set": "ellipses"}
    row = {**row, "n_images": "64", "ssim": "0.9", "trained_on": "ellipses"}
    _write(logs / "lpd" / "runs" / "a", [{**row, "psnr": "42.13"}], 100)
    _write(logs / "dose_lpd" / "runs" / "b", [{**row, "psnr": "41.00"}], 50)
    data = {"source": "ellipses", "train_photons_range": [1000, 100000]}
    config = {"train": True, "data": data}
    (logs / "dose_lpd" / "runs" / "b" / "config.json").write_text(json.dumps(config))
    rows, (problem,) = collect_results(logs, "fan_lowdose", trained_on="ellipses")
    assert [(r["psnr"], r["trained_on"]) for r in rows] == [("42.13", "ellipses")]
    assert "dose_lpd/runs/b: its weights were trained on ellipses at 1000-100000 photons" in problem
    config["train"] = False  # learnct-eval of weights kept outside a run, data with a range
    (logs / "dose_lpd" / "runs" / "b" / "config.json").write_text(json.dumps(config))
    rows, problems = collect_results(logs, "fan_lowdose", trained_on="ellipses")
    assert [r["psnr"] for r in rows] == ["41.00"] and not problems
    # learnct-eval of the dose-aware run's checkpoint: that run's config says the range
    trained = logs / "dose_lpd" / "runs" / "t"
    (trained / "checkpoints").mkdir(parents=True)
    (trained / "checkpoints" / "best.ckpt").write_bytes(b"weights")
    (trained / "config.json").write_text(json.dumps({"train": True, "data": data}))
    tested = {"train": False, "tested_checkpoint": str(trained / "checkpoints" / "best.ckpt")}
    (logs / "dose_lpd" / "runs" / "b" / "config.json").write_text(json.dumps(tested))
    rows, (problem,) = collect_results(logs, "fan_lowdose", trained_on="ellipses")
    assert [r["psnr"] for r in rows] == ["42.13"]
    assert "dose_lpd/runs/b: its weights were trained on ellipses at 1000-100000 photons" in problem
