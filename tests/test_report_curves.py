"""``make report`` writes ``experiments/<setup>/curves.{csv,png}``: validation PSNR against
step per method, from the run folders' CSV metrics (all sittings of one schedule), keeping the
written curve of a method whose table row is kept."""

from __future__ import annotations

import csv
import json

from learnct.reporting.__main__ import main
from test_report import _write


def _metrics(folder, lines, version=0, fit=True):
    """A Lightning CSV logger file: training rows and validation rows, blanks elsewhere. In a
    fit (``fit``: with training metrics) Lightning logs a validation after N steps at N - 1."""
    path = folder / "csv" / f"version_{version}" / "metrics.csv"
    path.parent.mkdir(parents=True)
    fields = ["epoch", "step", *(["train/loss"] if fit else []), "val/psnr", "val/ssim"]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        for line in lines:
            writer.writerow({**dict.fromkeys(fields, ""), "epoch": "0", **line})


def _curves(path):
    with open(path, newline="") as fh:
        return [(r["method"], int(r["step"]), float(r["val_psnr"])) for r in csv.DictReader(fh)]


def test_curves_join_the_sittings_of_a_schedule_and_keep_written_curves(tmp_path, capsys):
    logs, out = tmp_path / "logs", tmp_path / "experiments"
    row = {"physics": "parallel_ellipses", "test_set": "ellipses", "ssim": "0.9", "n_images": "64"}
    # LPD in two sittings: two run folders with one run id; only the last one tested
    first, second = (
        logs / "paper_lpd" / "runs" / name for name in ("2026-01-01_a", "2026-01-02_b")
    )
    for folder in (first, second):
        folder.mkdir(parents=True)
        (folder / "run.json").write_text(json.dumps({"id": "sched1", "settings": {}}))
    _metrics(
        first,
        [
            {"step": "8", "train/loss": "0.1"},
            {"step": "9", "val/psnr": "20.5"},
            {"step": "19", "val/psnr": "24.0", "val/ssim": "0.7"},
        ],
    )
    _metrics(second, [{"step": "29", "val/psnr": "27.25", "val/ssim": "0.8"}])
    _write(second, [{**row, "method": "LearnedPrimalDual", "psnr": "30.1"}])
    # an unrelated LPD run of another id is not part of the curve
    other = logs / "lpd" / "runs" / "2026-01-03_c"
    other.mkdir(parents=True)
    (other / "run.json").write_text(json.dumps({"id": "other", "settings": {}}))
    _metrics(other, [{"step": "9", "val/psnr": "99.0"}])
    # FBP: nothing to train, one validation point (trainer.validate: at the 0 steps done)
    fbp = logs / "fbp" / "runs" / "2026-01-01_f"
    _write(fbp, [{**row, "method": "FBP", "psnr": "19.7"}])
    _metrics(fbp, [{"step": "0", "val/psnr": "19.9"}], fit=False)

    report = ["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out), "--no-figure"]
    main(report)
    folder = out / "parallel_ellipses"
    assert _curves(folder / "curves.csv") == [
        ("FBP", 0, 19.9),
        ("LearnedPrimalDual", 10, 20.5),
        ("LearnedPrimalDual", 20, 24.0),
        ("LearnedPrimalDual", 30, 27.25),
    ]
    assert (folder / "curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "curves.csv" in capsys.readouterr().out

    # a fresh clone with a 4-image LPD smoke run: the committed LPD row, and its curve, stay;
    # FBP has no run there either: its committed curve stays too
    fresh = tmp_path / "fresh"
    smoke = fresh / "lpd" / "runs" / "smoke"
    _write(smoke, [{**row, "method": "LearnedPrimalDual", "n_images": "4", "psnr": "25.0"}])
    _metrics(smoke, [{"step": "5", "val/psnr": "15.0"}])
    main(["--setup", "parallel_ellipses", "--logs", str(fresh), "--out", str(out), "--no-figure"])
    assert _curves(folder / "curves.csv") == [
        ("FBP", 0, 19.9),
        ("LearnedPrimalDual", 10, 20.5),
        ("LearnedPrimalDual", 20, 24.0),
        ("LearnedPrimalDual", 30, 27.25),
    ]


def test_a_fits_file_without_training_rows_is_read_at_the_steps_done(tmp_path):
    """5 steps with a validation after them and nothing else logged (the training rows come
    every log_every_n_steps): Lightning's step 4 is 5 steps done."""
    from learnct.run.results import validation_points

    _metrics(tmp_path, [{"step": "4", "val/psnr": "20.0"}], fit=False)
    assert list(validation_points(tmp_path)) == [5]


def test_an_unreadable_metrics_file_is_reported_not_fatal(tmp_path, capsys):
    logs, out = tmp_path / "logs", tmp_path / "experiments"
    run = logs / "lpd" / "runs" / "a"
    _write(
        run,
        [
            {
                "physics": "fan_lowdose",
                "test_set": "ellipses",
                "ssim": "0.9",
                "method": "LearnedPrimalDual",
                "psnr": "30",
            }
        ],
    )
    _metrics(run, [{"step": "x", "val/psnr": "20"}])
    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out), "--no-figure"])
    assert "curves: skipped LearnedPrimalDual:" in capsys.readouterr().out
    assert not (out / "fan_lowdose" / "curves.csv").exists()  # no curve: none drawn


def test_a_sittings_committed_curve_stands_for_run_folders_that_are_gone(tmp_path):
    """The first sittings ran in another session (their run folders are gone); their points
    come from ``experiments/<setup>/sittings/<task>/curve.csv`` of the same run id, and the
    last sitting's run folder adds (and wins) its own."""
    logs, out = tmp_path / "logs", tmp_path / "experiments"
    row = {"physics": "parallel_ellipses", "test_set": "ellipses", "ssim": "0.9", "n_images": "64"}
    last = logs / "paper_lpd" / "runs" / "2026-01-02_b"
    last.mkdir(parents=True)
    (last / "run.json").write_text(json.dumps({"id": "sched1", "settings": {}}))
    _metrics(last, [{"step": "19", "val/psnr": "26.0"}, {"step": "29", "val/psnr": "27.25"}])
    _write(last, [{**row, "method": "LearnedPrimalDual", "psnr": "30.1"}])
    sittings = out / "parallel_ellipses" / "sittings"
    for task, run_id, psnr in (("paper_lpd", "sched1", "20.5"), ("old", "other", "99.0")):
        (sittings / task).mkdir(parents=True)
        (sittings / task / "curve.csv").write_text(
            f"step,val_psnr,val_ssim,run_id\n10,{psnr},0.6,{run_id}\n20,25.0,0.7,{run_id}\n"
        )
    main(["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out), "--no-figure"])
    assert _curves(out / "parallel_ellipses" / "curves.csv") == [
        ("LearnedPrimalDual", 10, 20.5),
        ("LearnedPrimalDual", 20, 26.0),
        ("LearnedPrimalDual", 30, 27.25),
    ]


def test_a_schedule_in_progress_is_drawn_beside_the_table(tmp_path, capsys):
    """A sittings checkpoint below its planned steps, of no table row's run, adds its committed
    curve under a label saying how far it is; an ended schedule and the table's own run do not
    (they are rows)."""
    import torch

    logs, out = tmp_path / "logs", tmp_path / "experiments"
    row = {"physics": "parallel_ellipses", "test_set": "ellipses", "ssim": "0.9", "n_images": "64"}
    run = logs / "paper_lpd" / "runs" / "2026-01-02_b"
    run.mkdir(parents=True)
    (run / "run.json").write_text(json.dumps({"id": "sched1", "settings": {}}))
    _metrics(run, [{"step": "29", "val/psnr": "27.25"}])
    _write(run, [{**row, "method": "LearnedPrimalDual", "psnr": "30.1"}])
    sittings = out / "parallel_ellipses" / "sittings"
    for task, run_id, method, step in (
        ("paper_lgd", "sched2", "LearnedGradientDescent", 40),  # in progress
        ("paper_fbpunet", "sched3", "FBPUNet", 100),  # ended: not drawn
        ("paper_lpd", "sched1", "LearnedPrimalDual", 20),  # the table's run: its row's curve
    ):
        (sittings / task).mkdir(parents=True)
        stamp = {"id": run_id, "settings": {"trainer.max_steps": 100}}
        state = {"global_step": step, "learnct_run": stamp, "learnct": {"method": method}}
        torch.save(state, sittings / task / "last.ckpt")
        (sittings / task / "curve.csv").write_text(
            f"step,val_psnr,val_ssim,nonfinite_steps,run_id\n10,21.5,0.6,0,{run_id}\n"
            f"20,25.0,0.7,0,{run_id}\n30,99.0,0.7,0,stale\n"
        )
    (sittings / "paper_broken").mkdir()  # a merge conflict's marker: left out, said so
    (sittings / "paper_broken" / "last.ckpt").write_bytes(b"<<<<<<< HEAD\n")
    main(["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out), "--no-figure"])
    assert "curves: left out paper_broken: sittings:" in capsys.readouterr().out
    lgd = "LearnedGradientDescent (paper_lgd: in progress, step 40 of 100)"
    assert _curves(out / "parallel_ellipses" / "curves.csv") == [
        ("LearnedPrimalDual", 10, 21.5),
        ("LearnedPrimalDual", 20, 25.0),
        ("LearnedPrimalDual", 30, 27.25),
        (lgd, 10, 21.5),
        (lgd, 20, 25.0),
    ]


def test_a_warm_started_run_continues_its_sources_curve(tmp_path, capsys):
    """A run from ``init_weights`` is drawn at the steps of its weights in all (its
    checkpoints' ``steps_before`` plus its own), not from 0; where no checkpoint records them
    the report says its curve starts at its own step 0."""
    import torch

    logs, out = tmp_path / "logs", tmp_path / "experiments"
    row = {"physics": "parallel_ellipses", "test_set": "ellipses", "ssim": "0.9", "n_images": "64"}
    config = {"init_weights": "logs/lpd/runs/first/checkpoints/last.ckpt", "train": True}
    lpd, lgd = logs / "lpd" / "runs" / "second", logs / "lgd" / "runs" / "second"
    for folder, method in ((lpd, "LearnedPrimalDual"), (lgd, "LearnedGradientDescent")):
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(config))
        _metrics(folder, [{"step": "9", "val/psnr": "30.0"}, {"step": "19", "val/psnr": "31.0"}])
        _write(folder, [{**row, "method": method, "psnr": "30.1"}])
    (lpd / "checkpoints").mkdir()
    record = {"method": "LearnedPrimalDual", "steps_before": 500}
    torch.save({"global_step": 20, "learnct": record}, lpd / "checkpoints" / "last.ckpt")
    (lpd / "checkpoints" / "step_000010.ckpt").write_bytes(b"truncated")  # passed over
    # resumed with resume=true alone (its config.json rewritten without init_weights): the
    # checkpoints still say where its weights started
    unet = logs / "fbpunet" / "runs" / "second"
    unet.mkdir(parents=True)
    (unet / "config.json").write_text(json.dumps({"train": True}))
    _metrics(unet, [{"step": "9", "val/psnr": "29.0"}])
    _write(unet, [{**row, "method": "FBPUNet", "psnr": "29.1"}])
    (unet / "checkpoints").mkdir()
    record = {"method": "FBPUNet", "steps_before": 300}
    torch.save({"global_step": 10, "learnct": record}, unet / "checkpoints" / "last.ckpt")
    main(["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out), "--no-figure"])
    assert _curves(out / "parallel_ellipses" / "curves.csv") == [
        ("FBPUNet", 310, 29.0),
        ("LearnedGradientDescent", 10, 30.0),
        ("LearnedGradientDescent", 20, 31.0),
        ("LearnedPrimalDual", 510, 30.0),
        ("LearnedPrimalDual", 520, 31.0),
    ]
    printed = capsys.readouterr()
    assert "LearnedGradientDescent started from weights whose training steps are not recorded" in (
        printed.out + printed.err
    )


def test_an_evaluation_keeps_the_curve_of_the_schedule_that_trained_its_weights(tmp_path, capsys):
    """``make eval`` of a sittings checkpoint, or of the weights exported from it, tests weights
    of a schedule whose run folders are gone: the row is the evaluation's, the curve the
    schedule's (the run id the checkpoint records, kept by the export, or its run record) up
    to the tested weights' step, and the schedule is drawn in progress only beyond it."""
    import torch

    from learnct.reporting.weights import strip_checkpoint

    logs, out = tmp_path / "logs", tmp_path / "experiments"
    row = {"physics": "parallel_ellipses", "test_set": "ellipses", "ssim": "0.9", "n_images": "64"}
    sittings = out / "parallel_ellipses" / "sittings" / "paper_lpd"
    sittings.mkdir(parents=True)
    stamp = {"id": "sched1", "settings": {"trainer.max_steps": 100}}
    state = {"global_step": 60, "learnct_run": stamp, "learnct": {"method": "LearnedPrimalDual"}}
    state["state_dict"] = {"w": torch.ones(2)}
    torch.save(state, sittings / "last.ckpt")
    (sittings / "curve.csv").write_text(
        "step,val_psnr,val_ssim,nonfinite_steps,run_id\n"
        "20,25.0,0.7,0,sched1\n60,27.5,0.8,0,sched1\n80,99.0,0.8,0,other\n"
    )
    exported = strip_checkpoint(sittings / "last.ckpt", out / "parallel_ellipses" / "w.ckpt")
    assert torch.load(exported, weights_only=True)["learnct_run"] == {"id": "sched1"}
    # weights exported before exports kept the stamp: their run record names the run
    older = out / "parallel_ellipses" / "older.ckpt"
    source = {"run_id": "sched1", "task_name": "paper_lpd"}
    torch.save({**state, "learnct_run": None, "learnct": {**state["learnct"], "source": source}},
               older)  # fmt: skip
    report = ["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out), "--no-figure"]
    for k, tested in enumerate((sittings / "last.ckpt", exported, older)):
        run = logs / "eval_lpd" / "runs" / f"2026-01-0{k + 1}_e"
        _write(run, [{**row, "method": "LearnedPrimalDual", "psnr": "30.1"}], age_s=10 - k)
        (run / "run.json").write_text(json.dumps({"id": f"eval{k}", "settings": {}}))
        config = {"train": False, "tested_checkpoint": str(tested)}
        (run / "config.json").write_text(json.dumps(config))
        main([*report, "--replace"])
        assert _curves(out / "parallel_ellipses" / "curves.csv") == [
            ("LearnedPrimalDual", 20, 25.0),
            ("LearnedPrimalDual", 60, 27.5),
        ], tested

    def evaluate(tested, when):
        run = logs / "eval_lpd" / "runs" / when
        _write(run, [{**row, "method": "LearnedPrimalDual", "psnr": "30.1"}])
        (run / "config.json").write_text(json.dumps({"train": False, "tested_checkpoint": tested}))
        main(report)

    # weights taken at step 20 of the schedule: its curve to step 20, the schedule in progress
    # beside it
    middle = out / "parallel_ellipses" / "step20.ckpt"
    torch.save({**state, "global_step": 20}, middle)
    evaluate(str(middle), "2026-01-04_e")
    lpd = "LearnedPrimalDual (paper_lpd: in progress, step 60 of 100)"
    assert _curves(out / "parallel_ellipses" / "curves.csv") == [
        ("LearnedPrimalDual", 20, 25.0),
        (lpd, 20, 25.0),
        (lpd, 60, 27.5),
    ]
    # weights that record no run: the written curve stays, said so
    unknown = out / "parallel_ellipses" / "unknown.ckpt"
    torch.save({**state, "learnct_run": None}, unknown)
    evaluate(str(unknown), "2026-01-05_e")
    assert "its run id not recorded): its written curve kept" in capsys.readouterr().out
    assert _curves(out / "parallel_ellipses" / "curves.csv")[0] == ("LearnedPrimalDual", 20, 25.0)
