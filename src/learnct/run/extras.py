"""The ``extras`` of a run (``configs/extras/default.yaml``, as in lightning-hydra-template),
applied when it starts: ``enforce_tags`` refuses a run without ``tags`` (with the config's
other checks: ``validate_config``), ``ignore_warnings``
silences Python warnings for the rest of the process, and ``print_config`` prints the resolved
config as a tree and saves it as ``<run folder>/config_tree.log``. A config without an
``extras`` section (a run folder of an earlier learnct) gets none of them."""

from __future__ import annotations

import io
import warnings
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

__all__ = ["CONFIG_TREE_FILE", "apply_extras", "config_tree"]

CONFIG_TREE_FILE = "config_tree.log"
#: the sections the tree shows first; the others follow in the config's order
TREE_ORDER = ("physics", "data", "model", "trainer", "logger", "callbacks", "paths", "extras")


def apply_extras(cfg: DictConfig) -> None:
    """Apply ``cfg.extras`` (see the module docstring) of a config that passed
    ``validate_config`` (``check_extras``: booleans, and tags under ``enforce_tags``)."""
    ignore, show = (
        OmegaConf.select(cfg, f"extras.{key}", default=False)
        for key in ("ignore_warnings", "print_config")
    )
    if ignore:
        warnings.filterwarnings("ignore")
    if show:
        import rich

        tree = config_tree(cfg)
        rich.print(tree)
        folder = Path(cfg.paths.output_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / CONFIG_TREE_FILE).write_text(_plain(tree))


def config_tree(cfg: DictConfig) -> Any:
    """The resolved config as a ``rich.tree.Tree``: one branch per top-level key (sections as
    YAML), :data:`TREE_ORDER` first."""
    from rich.syntax import Syntax
    from rich.tree import Tree

    tree = Tree("CONFIG", style="dim", guide_style="dim")
    keys = [k for k in TREE_ORDER if k in cfg] + [k for k in cfg if k not in TREE_ORDER]
    for key in keys:
        value = cfg[key]
        text = OmegaConf.to_yaml(value, resolve=True) if OmegaConf.is_config(value) else value
        if not isinstance(text, str):  # a scalar, as YAML writes it
            text = (
                "null"
                if text is None
                else str(text).lower()
                if isinstance(text, bool)
                else str(text)
            )
        syntax = Syntax(text.rstrip(), "yaml", background_color="default", word_wrap=True)
        tree.add(str(key), style="dim", guide_style="dim").add(syntax)
    return tree


def _plain(tree: Any) -> str:
    """``tree`` as plain text (no colours, no padding, long values unwrapped)."""
    from rich.console import Console

    console = Console(file=io.StringIO(), width=200, color_system=None)
    console.print(tree)
    return "".join(line.rstrip() + "\n" for line in console.file.getvalue().splitlines())
