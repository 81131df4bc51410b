"""``make dashboard``: the offline dashboard built from real tiny runs and a 2-trial sweep, opened
in headless Chromium as a user would; broken run folders are listed, never fatal."""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from learnct.dashboard import build_dashboard, main
from learnct.reporting.__main__ import main as report_main

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SMALL = ["data.val_size=2", "data.test_size=2", "data.eval_batch_size=2"]


def _sweep(run_cli, log_dir: Path) -> None:
    """``make sweep EXP=fbp SEARCH=fbp_filter`` with 2 trials, as a subprocess like the CLI."""
    (log_dir / "fbp").mkdir(parents=True, exist_ok=True)
    out = run_cli(
        "train",
        [
            "-m",
            "experiment=fbp",
            "hparams_search=fbp_filter",
            "hydra.sweeper.n_trials=2",
            "data.val_size=2",
            "logger=csv",
            "callbacks=none",
            f"paths.log_dir={log_dir}",
        ],
    )
    assert out.returncode == 0, out.stderr[-2000:]


def _results(folder: Path) -> dict[str, float]:
    with open(folder / "results.csv", newline="") as fh:
        return {row["test_set"]: float(row["psnr"]) for row in csv.DictReader(fh)}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, compose_config, run_config, run_cli) -> Path:
    def train(folder: Path, overrides: list[str]) -> None:
        run_config(compose_config("train", [*SMALL, *overrides], folder))

    return _make_project(tmp_path_factory.mktemp("project"), train, run_cli)


def _make_project(root: Path, train, run_cli) -> Path:
    """logs/ with an FBP run, a 4-step LGD run, a 2-trial Optuna sweep and two broken runs;
    experiments/ with make report's table, figure and dose curve of fan_lowdose.
    ``train(folder, overrides)`` runs a small train config in ``folder``."""
    logs = root / "logs"
    train(logs / "fbp" / "runs" / "2026-01-01_10-00-00", ["experiment=fbp", "callbacks=none"])
    lgd = logs / "lgd" / "runs" / "2026-01-02_10-00-00"
    train(
        lgd,
        [
            "experiment=lgd",
            "model.n_iter=1",
            "data.batch_size=1",
            "trainer.max_steps=4",
            "trainer.val_check_interval=2",
            "trainer.log_every_n_steps=1",
            "callbacks.progress_bar=null",
        ],
    )
    _sweep(run_cli, logs)
    # a copy of the LGD run whose results and checkpoint were damaged and whose curves and
    # validation panels are gone
    broken = logs / "lgd" / "runs" / "2026-01-03_10-00-00"
    shutil.copytree(lgd, broken)
    shutil.rmtree(broken / "csv")
    shutil.rmtree(broken / "panels")
    (broken / "results.csv").write_text("garbage\n")
    for ckpt in (broken / "checkpoints").glob("*.ckpt"):
        ckpt.write_bytes(ckpt.read_bytes()[:1000])
    # an interrupted run: CSV metrics of a few steps, nothing else
    interrupted = logs / "lpd" / "runs" / "2026-01-04_10-00-00"
    (interrupted / "csv" / "version_0").mkdir(parents=True)
    (interrupted / "csv" / "version_0" / "metrics.csv").write_text(
        "epoch,step,train/loss_step\n0,0,0.5\n0,1,0.25\n"
    )
    (logs / "lpd" / "optuna_broken.db").write_bytes(b"not a database")
    report = ["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(root / "experiments")]
    report_main([*report, "--dose", "--photons", "1e3,1e4", "--dose-images", "1"])
    return root


@pytest.mark.slow
def test_build_from_real_runs_lists_every_run_and_what_is_wrong(
    project: Path, tmp_path: Path
) -> None:
    db = project / "logs" / "fbp" / "optuna_fbp_filter.db"
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    summary = build_dashboard(project / "logs", project / "experiments", tmp_path / "dash")
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before  # studies are opened read-only
    assert (summary.n_runs, summary.n_sweeps, summary.n_setups) == (6, 1, 1)
    problems = "\n".join(summary.problems)
    assert "lgd/runs/2026-01-03_10-00-00: results.csv: unreadable" in problems
    assert "lgd/runs/2026-01-03_10-00-00: checkpoints/last.ckpt: truncated or corrupt" in problems
    assert "lpd/runs/2026-01-04_10-00-00: no .hydra/config.yaml or config.json" in problems
    assert "lpd/runs/2026-01-04_10-00-00: no results.csv: the run has not been tested" in problems
    assert "lpd/optuna_broken.db: not a readable Optuna study database" in problems
    assert not any(p.startswith("fbp/") or "2026-01-02" in p for p in summary.problems)

    text = (tmp_path / "dash" / "assets" / "data.js").read_text()
    data = json.loads(text.removeprefix("window.LEARNCT_DASHBOARD = ").rstrip().rstrip(";"))
    runs = {r["id"]: r for r in data["runs"]}
    lgd = runs["lgd/runs/2026-01-02_10-00-00"]
    assert lgd["method"] == "LearnedGradientDescent" and lgd["physics"] == "fan_lowdose"
    expected = _results(project / "logs" / "lgd" / "runs" / "2026-01-02_10-00-00")
    # rounded: PSNR to 2 decimals
    assert {t["test_set"]: t["psnr"] for t in lgd["tests"]} == {
        k: round(v, 2) for k, v in expected.items()
    }
    assert lgd["steps"] == 4 and lgd["hparams"]["n_iter"] == 1
    # a validation panel per validation (every 2 steps), saved into the run folder
    assert [p["step"] for p in lgd["panels"]] == [2, 4]
    assert runs["lgd/runs/2026-01-03_10-00-00"]["curves"] == {}
    assert lgd["val_psnr_best"] == pytest.approx(max(lgd["curves"]["val/psnr"]["value"]), abs=0.01)
    last = lgd["checkpoints"][0]
    assert (last["file"], last["global_step"], last["method"]) == (
        "last.ckpt",
        4,
        "LearnedGradientDescent",
    )
    assert last["best_score"] == pytest.approx(lgd["val_psnr_best"], abs=0.005)
    jobs = [r for r in data["runs"] if "/multiruns/" in r["id"]]
    assert len(jobs) == 2 and all(r["sweep"] == "fbp_filter" and not r["problems"] for r in jobs)
    (sweep,) = data["sweeps"]
    assert (sweep["study"], sweep["n_complete"]) == ("fbp_filter", 2)
    assert set(sweep["figures"]) == {"history", "importances", "parallel"}
    assert sweep["best_value"] == pytest.approx(max(t["value"] for t in sweep["trials"]))
    (setup,) = data["setups"]
    assert setup["name"] == "fan_lowdose" and len(setup["tables"]["results.csv"]["rows"]) == 4
    assert len(setup["tables"]["dose_curve.csv"]["rows"]) == 4  # 2 methods x 2 doses
    assert set(setup["images"]) == {"comparison.png", "curves.png", "dose_curve.png"}
    assert (tmp_path / "dash" / "assets" / "plotly.min.js").stat().st_size > 1_000_000
    for src in lgd["images"].values():  # copied into the folder: it is relocatable
        assert (tmp_path / "dash" / src).is_file()


def test_cli_names_missing_folders(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as err:
        main(["--logs", str(tmp_path / "nope"), "--experiments", str(tmp_path / "none")])
    assert err.value.code == 1
    assert "nope" in capsys.readouterr().err


def _browser(download_dir: Path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-unsafe-swiftshader",  # software WebGL for plotly's parallel coordinates
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1000",
        f"--user-data-dir={download_dir}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # an explicit driver path: Selenium Manager never tries to download one
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)


@pytest.mark.slow
@pytest.mark.skipif(
    not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)
def test_dashboard_in_headless_chromium(project: Path, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait

    built = build_dashboard(project / "logs", project / "experiments", tmp_path / "build")
    out = tmp_path / "moved"  # relocatable: works from wherever the folder is copied
    shutil.copytree(built.index.parent, out)
    browser = _browser(Path(tempfile.mkdtemp(dir=tmp_path)))
    try:
        browser.get((out / "index.html").as_uri())
        wait = WebDriverWait(browser, 30)
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#overlay-plot .scatterlayer .trace"))

        ids = [
            r.get_attribute("data-run-id")
            for r in browser.find_elements(By.CSS_SELECTOR, "#runs-table tbody tr")
        ]
        assert len(ids) == len(set(ids)) == 6
        psnr = {}
        for run_id in ("fbp/runs/2026-01-01_10-00-00", "lgd/runs/2026-01-02_10-00-00"):
            row = browser.find_element(By.CSS_SELECTOR, f'tr[data-run-id="{run_id}"]')
            shown = {
                test_set: row.find_element(By.CSS_SELECTOR, f'td[data-col="psnr:{test_set}"]').text
                for test_set in ("ellipses", "shepp_logan")
            }
            expected = _results(project / "logs" / run_id)
            assert shown == {k: f"{v:.2f}" for k, v in expected.items()}
            psnr[run_id] = expected["ellipses"]
        broken = browser.find_element(
            By.CSS_SELECTOR, 'tr[data-run-id="lgd/runs/2026-01-03_10-00-00"]'
        )
        assert "has-problems" in broken.get_attribute("class")
        assert "problems" in broken.find_element(By.CSS_SELECTOR, 'td[data-col="status"]').text

        def column(key: str) -> list[str]:
            cells = browser.find_elements(
                By.CSS_SELECTOR, f'#runs-table tbody td[data-col="{key}"]'
            )
            return [c.text for c in cells]

        sort_by = 'th[data-key="psnr:ellipses"]'
        browser.find_element(By.CSS_SELECTOR, sort_by).click()
        assert (
            browser.find_element(By.CSS_SELECTOR, sort_by).get_attribute("aria-sort")
            == "descending"
        )
        values = column("psnr:ellipses")
        numbers = [float(v) for v in values if v != "-"]
        assert len(numbers) == 2 and numbers == sorted(numbers, reverse=True)
        assert values[:2] == [f"{max(psnr.values()):.2f}", f"{min(psnr.values()):.2f}"]
        assert values[2:] == ["-"] * 4  # runs without test results last
        titles = [  # each test score names its number of test images
            c.get_attribute("title")
            for c in browser.find_elements(
                By.CSS_SELECTOR, '#runs-table tbody td[data-col="psnr:ellipses"]'
            )
            if c.text != "-"
        ]
        assert len(titles) == 2 and all(re.fullmatch(r"\d+ test images", t) for t in titles)
        browser.find_element(By.CSS_SELECTOR, sort_by).click()
        assert column("psnr:ellipses")[:2] == [
            f"{min(psnr.values()):.2f}",
            f"{max(psnr.values()):.2f}",
        ]

        search = browser.find_element(By.ID, "run-filter")
        search.send_keys("gradient")
        assert len(column("experiment")) == 2 and set(column("experiment")) == {"lgd"}
        search.clear()
        search.send_keys(" ")  # an input event with an empty filter shows every run again
        assert len(column("experiment")) == 6

        # the LGD run's own curves, figures and checkpoints
        browser.find_element(
            By.CSS_SELECTOR, 'tr[data-run-id="lgd/runs/2026-01-02_10-00-00"] td[data-col="method"]'
        ).click()
        wait.until(
            lambda b: (
                len(b.find_elements(By.CSS_SELECTOR, "#run-detail .plot-grid .scatterlayer .trace"))
                >= 3
            )
        )
        points = browser.execute_script(
            "return [...document.querySelectorAll('#run-detail .plot-grid .js-plotly-plot')]"
            ".map(d => d.data[0].x.length)"
        )
        assert points and all(n >= 1 for n in points)
        # every plot: an SVG with a drawn trace (Optuna draws parallel coordinates as lines)
        for figure, trace in (
            ("history", ".scatterlayer .trace path"),
            ("importances", ".barlayer .trace"),
            ("parallel", ".scatterlayer .trace path"),
        ):
            assert browser.find_elements(
                By.CSS_SELECTOR, f'#sweeps [data-figure="{figure}"] {trace}'
            )
        browser.find_element(By.CSS_SELECTOR, '#sweeps [data-study="fbp_filter"] button').click()
        assert sorted(column("experiment")) == ["fbp", "fbp"]  # the sweep's 2 job folders
        dose = '#setups [data-figure="dose-psnr"] .scatterlayer .trace'
        assert len(browser.find_elements(By.CSS_SELECTOR, dose)) == 2  # one line per method
        images = browser.execute_script(
            "return [...document.images]"
            ".map(i => [i.getAttribute('src'), i.complete && i.naturalWidth])"
        )
        sources = [src for src, _ in images]
        assert any("2026-01-02_10-00-00__comparison.png" in s for s in sources)
        assert any("setup__fan_lowdose__dose_curve.png" in s for s in sources)
        assert all(width > 0 for _, width in images), images

        # the LGD run's validation images over steps: a slider from the latest back
        label = browser.find_element(By.CSS_SELECTOR, "#run-detail .panel-step")
        assert re.fullmatch(r"step 4 \(epoch \d+\), 2 of 2", label.text), label.text
        slider = browser.find_element(By.CSS_SELECTOR, "#run-detail .panels input[type=range]")
        browser.execute_script(
            "arguments[0].value = 0; arguments[0].dispatchEvent(new Event('input'))", slider
        )
        assert re.fullmatch(r"step 2 \(epoch \d+\), 1 of 2", label.text), label.text
        panel = browser.find_element(By.CSS_SELECTOR, "#run-detail .panels img")
        assert re.search(r"_step0000002\.png$", panel.get_attribute("src"))
        wait.until(lambda b: b.execute_script("return arguments[0].naturalWidth", panel) > 0)

        # the runs table fits 1400 px: no horizontal scrolling, hyperparameter cells of at
        # most 2 lines, showing only what differs between runs (all of them in the tooltip)
        search.clear()
        search.send_keys(" ")  # every run again (the sweep's button filtered the table)
        scroll, width = browser.execute_script(
            "const w = document.querySelector('#runs .table-wrap');"
            "return [w.scrollWidth, w.clientWidth]"
        )
        assert scroll <= width, (scroll, width)
        lines = browser.execute_script(
            "return [...document.querySelectorAll('#runs-table td.hparams')].map(td => {"
            "  const range = document.createRange(); range.selectNodeContents(td);"
            "  return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size; })"
        )
        assert len(lines) == 6 and max(lines) <= 2, lines
        cell = 'tr[data-run-id="lgd/runs/2026-01-02_10-00-00"] td[data-col="hparams"]'
        lgd_hparams = browser.find_element(By.CSS_SELECTOR, cell)
        assert lgd_hparams.text == "-" and "n_iter=1" in lgd_hparams.get_attribute("title")
        assert any("filter=" in text for text in column("hparams"))  # the FBP sweep's filters

        # runs without curves cannot be ticked, and the overlay never shows an empty plot
        no_curves = browser.find_element(
            By.CSS_SELECTOR, 'tr[data-run-id="lgd/runs/2026-01-03_10-00-00"] input'
        )
        assert not no_curves.is_enabled()
        assert no_curves.get_attribute("title") == "no curves logged"
        browser.find_element(By.ID, "select-none").click()
        overlay = browser.find_element(By.ID, "overlay-plot")
        assert overlay.text == "Tick runs in the table to overlay their curves."
        Select(browser.find_element(By.ID, "overlay-metric")).select_by_value("val/psnr")
        browser.find_element(
            By.CSS_SELECTOR, 'tr[data-run-id="lpd/runs/2026-01-04_10-00-00"] input'
        ).click()  # the interrupted run logged train/loss_step only
        assert overlay.text == "No curves logged: none of the ticked runs logged val/psnr."
        assert not overlay.find_elements(By.CSS_SELECTOR, ".main-svg")

        problems = browser.find_element(By.ID, "problems").text
        assert "truncated or corrupt" in problems and "optuna_broken.db" in problems

        height = browser.execute_script("return document.body.scrollHeight")
        browser.set_window_size(1400, min(height + 100, 6000))
        browser.save_screenshot(str(out / "screenshot.png"))
        print(f"screenshot: {out / 'screenshot.png'}")
        severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
        assert not severe, severe
    finally:
        browser.quit()
    assert (out / "screenshot.png").stat().st_size > 10_000
