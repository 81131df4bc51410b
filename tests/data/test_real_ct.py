"""``learnct.data.real_ct``: the slices installed with pydicom are written beside the package
archives' (the archives' part, :mod:`learnct.data.sample_scans`, is tested there and stubbed
here), by the same writer and command line."""

from __future__ import annotations

import hashlib
import os

import pytest

from learnct.data import DataError, real_ct


@pytest.fixture
def no_wheel(monkeypatch):
    """The archives' slices left out: ``fetch_sample_scans`` writes nothing."""
    calls = []

    def fetch(root, archive_files, scans):
        calls.append((root, archive_files, scans))
        return []

    monkeypatch.setattr(real_ct, "fetch_sample_scans", fetch)
    return calls


def test_writes_the_pydicom_slices_and_leaves_good_ones_alone(tmp_path, no_wheel):
    paths = real_ct.fetch_real_ct(tmp_path, ["some.whl"])
    assert no_wheel == [(tmp_path, ["some.whl"], real_ct.ARCHIVE_SLICES)]
    assert paths == [tmp_path / "test" / name for name in real_ct.PYDICOM_SLICES]
    for path in paths:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == real_ct.PYDICOM_SLICES[path.name]
    old = paths[0].stat().st_mtime_ns - 10**9
    os.utime(paths[0], ns=(old, old))
    real_ct.fetch_real_ct(tmp_path)
    assert paths[0].stat().st_mtime_ns == old  # not rewritten
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["test", *real_ct.PYDICOM_SLICES])


def test_command_line_prints_the_paths_and_how_to_use_them(tmp_path, no_wheel, capsys):
    assert real_ct.main(["--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[:-1] == [str(tmp_path / "test" / name) for name in real_ct.PYDICOM_SLICES]
    assert out[-1] == (
        f'use them with: make eval EXP=fbp ARGS="data=real_ct data.folder_root={tmp_path}"'
    )


def test_command_line_reports_a_data_error_and_exits_1(tmp_path, monkeypatch, capsys):
    def offline(root, archive_files, scans):
        raise DataError("could not download pydicom-data==1.0.0 from PyPI")

    monkeypatch.setattr(real_ct, "fetch_sample_scans", offline)
    assert real_ct.main(["--root", str(tmp_path)]) == 1
    assert capsys.readouterr().err == "error: could not download pydicom-data==1.0.0 from PyPI\n"


def test_the_module_table_names_every_slice_written():
    """The table users read lists each file the fetch writes, once."""
    import re

    table = re.split(r"^=[= ]+$", real_ct.__doc__, flags=re.M)[2]  # the rows
    names = re.findall(r"^``([\w.-]+)``\s", table, flags=re.M)
    written = [*(s.name for s in real_ct.ARCHIVE_SLICES), *real_ct.PYDICOM_SLICES]
    assert sorted(names) == sorted(written)
