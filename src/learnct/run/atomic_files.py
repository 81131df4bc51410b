"""Files replaced atomically: written to a hidden temporary file in the target's folder,
flushed to disk and ``os.replace``-d over the target. A reader, or a write that fails or is
killed half-way, sees either the whole previous file or the whole new one, never a partial
one. A failed write removes its temporary file; a killed one can leave a hidden
``.<name>.<random>.tmp`` beside the target (``learnct.run.atomic_checkpoint`` removes those of
checkpoints when a run resumes).

Checkpoints (``atomic_checkpoint``), a run folder's ``results.csv`` and ``config.json``
(``learnct.run.results``) and the report's tables go through :func:`atomic_open`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["TEMP_SUFFIX", "atomic_open", "atomic_write_text"]

TEMP_SUFFIX = ".tmp"


def _new_temporary(path: Path) -> tuple[Path, int]:
    """A new hidden file beside ``path`` and its descriptor, with the permissions that
    ``open(path, "w")`` would give (the umask applies; ``mkstemp`` would make it private)."""
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
        try:
            return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:  # another writer drew the same name
            continue


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "w", **kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode, **kwargs)`` for writing (``mode`` ``"w"`` or ``"wb"``), whose
    content replaces ``path`` only when the ``with`` block ends without an error (see the
    module docstring); creates ``path``'s folder."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open writes whole files: mode 'w' or 'wb', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _new_temporary(path)
    try:
        with os.fdopen(fd, mode, **kwargs) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Replace ``path`` by ``text`` (UTF-8) atomically; returns ``path``."""
    with atomic_open(path, "w", encoding="utf-8") as fh:
        fh.write(text)
    return Path(path)
