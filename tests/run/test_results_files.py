"""A run folder's ``results.csv`` and ``config.json`` are replaced atomically: a write that
fails half-way leaves the previous files whole and no temporary file behind."""

from __future__ import annotations

import json
import os

import pytest

from learnct.run import results
from learnct.run.atomic_files import atomic_open, atomic_write_text
from learnct.run.results import RESULT_FIELDS, ResultsError, read_results, write_results


class Unwritable:
    """A value whose text cannot be made: the CSV writer fails when it reaches it, after the
    rows before it (as a full disk or a kill fails a write half-way)."""

    def __str__(self):
        raise OSError("No space left on device")


def _row(i, **values):
    return {**dict.fromkeys(RESULT_FIELDS, ""), "method": "FBP", "physics": "fan_lowdose"} | {
        "test_set": f"set{i}",
        "psnr": 30.0 + i,
        "ssim": 0.5,
        **values,
    }


def test_a_results_write_failing_half_way_keeps_the_previous_files(tmp_path):
    write_results(tmp_path, [_row(0), _row(1)], {"seed": 1})
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    rows = [_row(i) for i in range(2000)] + [_row(2000, psnr=Unwritable())]  # > a write buffer
    with pytest.raises(OSError, match="No space left"):
        write_results(tmp_path, rows, {"seed": 2})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # no temporary
    assert [r["test_set"] for r in read_results(tmp_path / "results.csv")] == ["set0", "set1"]
    # a config that cannot be written changes neither file (results and config stay a pair)
    with pytest.raises(TypeError, match="not JSON serializable"):
        write_results(tmp_path, [_row(5)], {"seed": 3, "provenance": {"commit": object()}})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    write_results(tmp_path, [_row(7)], {"seed": 4})
    assert [r["test_set"] for r in read_results(tmp_path / "results.csv")] == ["set7"]
    assert json.loads((tmp_path / "config.json").read_text()) == {"seed": 4}


def test_atomic_open_replaces_whole_files_only(tmp_path):
    path = tmp_path / "sub" / "table.md"
    assert atomic_write_text(path, "first\n") == path  # creates the folder
    with pytest.raises(KeyboardInterrupt), atomic_open(path) as fh:
        fh.write("half of the second")
        raise KeyboardInterrupt
    assert path.read_text() == "first\n" and [p.name for p in path.parent.iterdir()] == [path.name]
    with atomic_open(path, "wb") as fh:
        fh.write(b"second\n")
    assert path.read_text() == "second\n"
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() makes it, not private
    with pytest.raises(ValueError, match="mode 'w' or 'wb', not 'a'"), atomic_open(path, "a"):
        pass


def test_the_tested_checkpoint_is_found_where_the_run_recorded_it(tmp_path, monkeypatch):
    """Relative to the run folder when inside it (the folder can move), else as given (make
    eval's path, relative to where it ran); a run that tested weights in memory says so
    instead of a guess among its checkpoints."""
    run, moved, elsewhere = tmp_path / "run", tmp_path / "moved", tmp_path / "eval.ckpt"
    (run / "checkpoints").mkdir(parents=True)
    for name in ("epoch=1-step=9.ckpt", "final.ckpt", "last.ckpt"):
        (run / "checkpoints" / name).write_bytes(b"x")
    elsewhere.write_bytes(b"x")
    inside = results.tested_record(run, run / "checkpoints" / "final.ckpt")
    assert inside == "checkpoints/final.ckpt"  # not the best-named epoch=1-step=9.ckpt
    run.rename(moved)
    config = {"tested_checkpoint": inside}
    assert results.tested_checkpoint(moved, config) == moved / "checkpoints" / "final.ckpt"
    outside = {"tested_checkpoint": results.tested_record(moved, elsewhere)}
    assert results.tested_checkpoint(moved, outside) == elsewhere
    monkeypatch.chdir(tmp_path)  # make eval CKPT=eval.ckpt, run here: found from here
    given = {"tested_checkpoint": results.tested_record(moved, "eval.ckpt")}
    assert given == {"tested_checkpoint": "eval.ckpt"}
    assert results.tested_checkpoint(moved, given).resolve() == elsewhere.resolve()
    assert results.tested_record(moved, None) is None
    with pytest.raises(ResultsError, match="weights in memory and kept no checkpoint"):
        results.tested_checkpoint(moved, {"tested_checkpoint": None})
    (moved / "checkpoints" / "final.ckpt").unlink()
    with pytest.raises(ResultsError, match=r"final\.ckpt no longer exists"):
        results.tested_checkpoint(moved, config)
    # a run written before the record: its best checkpoint by name, as before
    assert results.tested_checkpoint(moved, {}).name == "epoch=1-step=9.ckpt"
