"""``make report`` sets the published numbers of ``experiments/published.yaml`` beside ours in
``results.md``: ours, published and the difference, and a claimed margin against ours."""

from __future__ import annotations

import shutil

import pytest

from conftest import REPO_ROOT
from learnct.reporting.__main__ import main
from learnct.reporting.published import read_published
from learnct.run.results import ResultsError
from test_report import _write


def _rows(logs, setup="parallel_ellipses"):
    for method, psnr, steps in (
        ("FBP", "19.7312", ""),
        ("TV", "28.41", ""),
        ("FBPUNet", "26.91", "1200"),
        ("LearnedGradientDescent", "28.75", "4400"),
        ("LearnedPrimalDual", "30.44", "100000"),
    ):
        row = {"physics": setup, "test_set": "shepp_logan", "ssim": "0.9", "n_images": "1"}
        row = {**row, "method": method, "psnr": psnr, "train_steps": steps}
        _write(logs / method / "runs" / "a", [row])


def test_the_committed_published_numbers_are_the_papers():
    published = read_published(REPO_ROOT / "experiments" / "published.yaml", "parallel_ellipses")
    assert {(v.method, v.test_set, v.psnr) for v in published.values} == {
        ("FBP", "shepp_logan", 19.75),
        ("TV", "shepp_logan", 29.83),
        ("LearnedGradientDescent", "shepp_logan", 32.02),
    }
    (margin,) = published.margins
    assert (margin.method, margin.at_least_db) == ("LearnedPrimalDual", 6.0)
    assert set(margin.over) == {"FBP", "TV", "FBPUNet"}
    assert "Inverse Problems" in published.sources["lgd2017"]
    assert read_published(REPO_ROOT / "experiments" / "published.yaml", "fan_mayo") is None


def test_report_sets_published_numbers_and_differences_beside_ours(tmp_path):
    logs, out = tmp_path / "logs", tmp_path / "experiments"
    _rows(logs)
    out.mkdir()
    shutil.copy(REPO_ROOT / "experiments" / "published.yaml", out / "published.yaml")
    main(["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out), "--no-figure"])
    md = (out / "parallel_ellipses" / "results.md").read_text()
    table, published = md.split("## Published numbers")
    assert "| FBP | shepp_logan | 1 | - | 19.73 |" in table  # the table itself is unchanged
    assert "| FBP | shepp_logan | 19.73 | - | 19.75 | -0.02 | lgd2017 |" in published
    assert "| TV | shepp_logan | 28.41 | - | 29.83 | -1.42 | lgd2017 |" in published
    # our steps beside the paper's number: a 4.4k-step row against a 100k-step schedule
    lgd = "| LearnedGradientDescent | shepp_logan | 28.75 | 4,400 | 32.02 | -3.27 | lgd2017 |"
    assert lgd in published
    # LPD 30.44 over the best of FBP, TV, FBP + U-Net (TV 28.41): +2.03 against > 6
    assert (
        "| LearnedPrimalDual (100,000 steps) | shepp_logan | FBP, TV, FBPUNet (1,200 steps) | "
        "+2.03 | > 6.0 | lpd2018 |"
    ) in published
    assert '- lpd2018: Adler and Öktem, "Learned Primal-Dual Reconstruction"' in published
    # another setup has no published numbers: no section
    _rows(logs / "fan", "fan_lowdose")
    main(["--setup", "fan_lowdose", "--logs", str(logs), "--out", str(out), "--no-figure"])
    assert "Published" not in (out / "fan_lowdose" / "results.md").read_text()


def test_a_missing_row_and_a_malformed_file_are_named(tmp_path, capsys):
    logs, out = tmp_path / "logs", tmp_path / "experiments"
    _rows(logs)
    shutil.rmtree(logs / "FBPUNet")
    out.mkdir()
    path = out / "published.yaml"
    shutil.copy(REPO_ROOT / "experiments" / "published.yaml", path)
    main(["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out), "--no-figure"])
    md = (out / "parallel_ellipses" / "results.md").read_text()
    assert "| FBP, TV (no row: FBPUNet) | +2.03 |" in md
    path.write_text("sources: {a: x}\nparallel_ellipses:\n  values:\n    - {method: FBP}\n")
    with pytest.raises(SystemExit):
        main(["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out)])
    assert "published.yaml: {'method': 'FBP'} is not a PublishedValue" in capsys.readouterr().err
    path.write_text(
        "sources: {a: x}\nparallel_ellipses:\n  values:\n"
        "    - {method: FBP, test_set: s, psnr: 1, source: b}\n"
    )
    with pytest.raises(ResultsError, match="source 'b' is not under 'sources'"):
        read_published(path, "parallel_ellipses")


def test_a_published_file_given_must_exist(tmp_path, capsys):
    """The default file may be missing (no published numbers); a mistyped --published may not
    (it would drop the section silently)."""
    logs, out = tmp_path / "logs", tmp_path / "experiments"
    row = {"method": "FBP", "physics": "parallel_ellipses", "test_set": "ellipses", "n_images": "4"}
    _write(logs / "fbp" / "runs" / "a", [{**row, "psnr": "20", "ssim": "0.5"}])
    report = ["--setup", "parallel_ellipses", "--logs", str(logs), "--out", str(out)]
    main([*report, "--no-figure"])  # no <out>/published.yaml: a table without the section
    assert "Published numbers" not in (out / "parallel_ellipses" / "results.md").read_text()
    with pytest.raises(SystemExit):
        main([*report, "--no-figure", "--published", str(tmp_path / "publishd.yaml")])
    assert "publishd.yaml does not exist (omit it for none)" in capsys.readouterr().err
