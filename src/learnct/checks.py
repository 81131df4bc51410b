"""Argument checks shared by every layer: one definition of "an integer" (``True`` is an
``int`` in Python, but never a count here) and one message for a bad one; the command lines'
display window ``lo,hi``."""

from __future__ import annotations

import math

__all__ = ["check_int", "check_positive", "is_int", "window_argument"]


def is_int(value: object) -> bool:
    """``value`` is an ``int`` and not a ``bool``."""
    return isinstance(value, int) and not isinstance(value, bool)


def check_int(name: str, value: object, minimum: int = 1) -> int:
    """``value`` if it is an integer ``>= minimum``, else ``ValueError``: ``<name> must be an
    integer >= <minimum>, got <value>``."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_positive(name: str, value: object, what: str) -> float:
    """``value`` as a float if it is a finite number ``> 0``, else ``ValueError``: ``<name>
    must be a positive <what>, got <value>`` (``what``: e.g. ``"length in mm"``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        value_ok = False
    else:
        value_ok = math.isfinite(value) and value > 0
    if not value_ok:
        raise ValueError(f"{name} must be a positive {what}, got {value!r}")
    return float(value)


def window_argument(text: str) -> tuple[float, float]:
    """``--window lo,hi`` (an argparse type): two finite numbers with ``lo < hi``, else
    ``argparse.ArgumentTypeError`` naming the problem."""
    import argparse

    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"--window wants two numbers lo,hi: {err}") from err
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise argparse.ArgumentTypeError(f"--window needs finite lo < hi, got {text!r}")
    return lo, hi
