"""Paths as the repository names them (``repository_path``)."""

from __future__ import annotations

from learnct.run.provenance import REPO_ROOT, repository_path


def test_a_path_inside_the_working_folder_is_relative_to_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert repository_path(tmp_path / "logs" / "run") == "logs/run"
    assert repository_path("logs/run") == "logs/run"


def test_a_committed_file_of_the_code_is_relative_to_its_checkout_from_anywhere(
    tmp_path, monkeypatch
):
    """A git worktree running main's editable install resolves committed names to main's
    files: their record must not be main's absolute path."""
    monkeypatch.chdir(tmp_path)
    committed = REPO_ROOT / "experiments" / "fan_lowdose" / "weights" / "LearnedPrimalDual.ckpt"
    assert repository_path(committed) == "experiments/fan_lowdose/weights/LearnedPrimalDual.ckpt"


def test_a_path_outside_both_stays_absolute_and_a_code_root_needs_a_project(tmp_path, monkeypatch):
    work, code, other = (tmp_path / name for name in ("work", "code", "other"))
    for folder in (work, code, other):
        folder.mkdir()
    monkeypatch.chdir(work)
    assert repository_path(other / "x.ckpt", code_root=code) == str(other / "x.ckpt")
    (code / "pyproject.toml").write_text("")
    assert repository_path(code / "x.ckpt", code_root=code) == "x.ckpt"
    assert repository_path(other / "x.ckpt", code_root=code) == str(other / "x.ckpt")
    monkeypatch.chdir(tmp_path)  # a parent of the checkout: still named from the checkout
    assert repository_path(code / "x.ckpt", code_root=code) == "x.ckpt"
    assert repository_path(work / "x.ckpt", code_root=code) == "work/x.ckpt"


def test_a_relative_path_from_a_subfolder_of_the_checkout_is_named_from_the_checkout(
    tmp_path, monkeypatch
):
    code = tmp_path / "code"
    (code / "experiments").mkdir(parents=True)
    (code / "pyproject.toml").write_text("")
    monkeypatch.chdir(code / "experiments")
    assert repository_path("w/x.ckpt", code_root=code) == "experiments/w/x.ckpt"
    assert repository_path("../../y.ckpt", code_root=code) == str(tmp_path / "y.ckpt")
