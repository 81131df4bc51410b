"""The C++ sources of the backends (``*.cpp`` beside this module), compiled on first use.

Each source is compiled once per machine with the system's C++ compiler (``$CXX``, else
``c++``; ``-O2 -march=native -fopenmp`` plus the source's own flags, a few seconds) into
``<cache_dir>/kernels/``, keyed by the source, the compiler, the flags and the CPU. Where that
fails (no compiler) :func:`native_library` returns None, after one warning, and the caller uses
its torch fallback. OpenMP code runs on the runtime torch loaded (libgomp.so.1), so
``torch.set_num_threads`` applies and no second thread pool spins.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["native_library"]

log = logging.getLogger(__name__)
_FLAGS = ("-O2", "-march=native", "-fopenmp", "-shared", "-fPIC", "-std=c++17")


def _cpu_id() -> str:
    """The CPU model and flags (``-march=native`` code runs only on a CPU like this one)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    keep = [ln for ln in lines if ln.startswith(("model name", "flags"))]
    return "\n".join(sorted(set(keep)))


def native_library(source_name: str, extra_flags: tuple[str, ...] = ()) -> ctypes.CDLL | None:
    """The compiled ``source_name`` (a ``.cpp`` file beside this module), built once per
    machine and cached on disk (callers keep the loaded library), or None where it cannot be
    built (the reason is logged; the caller says what it falls back to)."""
    from learnct.physics.backends.sparse import cache_dir

    source = Path(__file__).with_name(source_name)
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    if compiler is None:
        log.warning("no C++ compiler (set CXX) for %s", source_name)
        return None
    flags = [*_FLAGS, *extra_flags]
    key = hashlib.sha256(
        "\n".join([source.read_text(), compiler, *flags, _cpu_id()]).encode()
    ).hexdigest()[:16]
    path = cache_dir() / "kernels" / f"{source.stem}-{key}.so"
    try:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
                built = Path(tmp) / path.name
                subprocess.run(
                    [compiler, *flags, str(source), "-o", str(built)],
                    check=True,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                os.replace(built, path)  # atomic: never a half-written library
        return ctypes.CDLL(str(path))
    except (OSError, subprocess.SubprocessError) as err:
        err = getattr(err, "stderr", None) or err
        log.warning("could not build %s (%s)", path, err)
        return None
