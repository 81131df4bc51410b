"""``DataError``: a data set that cannot be read, with the file (or folder) and the problem."""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["DataError"]


class DataError(ValueError):
    """A missing, empty, corrupt or wrong-shaped data file or folder.

    The message always names the path and says what is wrong (and, for missing data, where
    it was looked for and how to get it). The constructor takes a single message string, so
    that PyTorch's DataLoader can re-raise the error from a worker process as a ``DataError``:
    it passes ``"Caught DataError in DataLoader worker process <k>.\\nOriginal Traceback ..."``
    (the worker's whole traceback), of which the error keeps the original message, so that
    it still reads as one line naming the file; the rest is in ``worker_traceback``.
    """

    def __init__(self, message: str) -> None:
        self.worker_traceback: str | None = None
        original = _original_message(type(self).__name__, message)
        if original is not None:
            self.worker_traceback, message = message, original
        super().__init__(message)

    @classmethod
    def for_path(cls, path: str | Path, problem: str) -> DataError:
        return cls(f"{path}: {problem}")


def _original_message(name: str, message: str) -> str | None:
    """The message of the last ``<name>`` in a worker's traceback as torch's
    ``ExceptionWrapper.reraise`` formats it, or None for any other message."""
    if not isinstance(message, str) or not message.startswith(f"Caught {name} in "):
        return None
    lines = list(re.finditer(rf"^(?:[\w.]+\.)?{re.escape(name)}: ", message, re.MULTILINE))
    return message[lines[-1].end() :].rstrip("\n") if lines else None
