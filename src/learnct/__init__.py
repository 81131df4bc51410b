"""learnct: learned low-dose CT reconstruction with PyTorch Lightning.

``learnct.pretrained(name)`` loads a committed model (``learnct.pretrained_names()`` lists
them); both are imported on first use, so ``import learnct`` stays light.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["pretrained", "pretrained_names"]


def pretrained(name: str, backend: str = "auto") -> Any:
    """The committed model ``name`` (e.g. ``"lpd-fan_lowdose"``) or a checkpoint path, built
    from its checkpoint with no overrides (:func:`learnct.methods.pretrained.load_pretrained`)."""
    from learnct.methods.pretrained import load_pretrained

    return load_pretrained(name, backend=backend)


def pretrained_names() -> list[str]:
    """The names of the committed models."""
    from learnct.methods.pretrained import pretrained_names as names

    return names()
