"""Argument checks shared by every layer: one definition of "an integer" (``True`` is an
``int`` in Python, but never a count here) and one message for a bad one."""

from __future__ import annotations

__all__ = ["check_int", "is_int"]


def is_int(value: object) -> bool:
    """``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an integer ``>= minimum``, else ``ValueError``: ``<name> must be an
    integer >= <minimum>, got <value>``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value
