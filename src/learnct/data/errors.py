"""``DataError``: a data set that cannot be read, with the file (or folder) and the problem."""

from __future__ import annotations

from pathlib import Path

__all__ = ["DataError"]


class DataError(ValueError):
    """A missing, empty, corrupt or wrong-shaped data file or folder.

    The message always names the path and says what is wrong (and, for missing data, where
    it was looked for and how to get it). The constructor takes a single message string, so
    that PyTorch's DataLoader can re-raise the error from a worker process as a ``DataError``
    whose message still names the file.
    """

    @classmethod
    def for_path(cls, path: str | Path, problem: str) -> DataError:
        return cls(f"{path}: {problem}")
