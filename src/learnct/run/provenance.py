"""Where a result came from: the git commit of the code, the versions of its libraries, and
paths as the repository names them."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from pathlib import Path

__all__ = ["git_commit", "library_versions", "repository_path"]

REPO_ROOT = Path(__file__).resolve().parents[3]


def git_commit(repo: str | Path = REPO_ROOT) -> str:
    """Short commit of ``repo``'s HEAD, with ``-dirty`` when tracked files have uncommitted
    changes; ``"unknown"`` outside a git checkout."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True, cwd=repo, timeout=10
        )
        return done.stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        status = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}-dirty" if status else head


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def library_versions() -> dict[str, str]:
    """Versions of Python, torch, lightning and learnct (results-row column names)."""
    return {
        "python_version": sys.version.split()[0],
        "torch_version": _version("torch"),
        "lightning_version": _version("lightning"),
        "learnct_version": _version("learnct"),
    }


def repository_path(path: str | Path, code_root: Path = REPO_ROOT) -> str:
    """``path`` relative to the repository, with ``/`` separators: to the checkout of the code
    itself (``code_root``, when it holds a ``pyproject.toml``) when it lies inside it (a
    committed model, also from a git worktree running an editable install, or from a parent
    folder or a subfolder), else to the working folder; else absolute. A relative ``path`` is
    relative to the working folder."""
    path = Path.cwd() / path
    roots = [code_root] * (code_root / "pyproject.toml").is_file() + [Path.cwd()]
    for root in roots:
        try:
            return path.resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
    return str(path.resolve())  # outside the repository
