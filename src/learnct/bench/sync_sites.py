"""Where a Lightning training run synchronises the host with the GPU (issue #21).

Through Lightning the paper's LPD took 16.9 ms a step on an H200 against the bare compiled
step's 10 ms (``experiments/benchmarks/lightning_gpu.md``): if something in the loop waits for
the GPU every step (a host read of a device value, a copy from pageable memory), the host's
work and the GPU's add up instead of overlapping. :class:`SyncSites` turns on torch's CUDA sync
debug mode (``torch.cuda.set_sync_debug_mode("warn")``: every synchronising CUDA call warns)
for a window of training steps, after the compile, and writes each Python call site that
synchronised, with its count and the learnct/Lightning frames that led to it, as a Markdown
table. It lists the synchronisations torch reports (host reads of device values, blocking
copies, stream and device synchronisations); a non-blocking copy from pageable memory, which
may wait too, is not among them:

    python -m learnct.train experiment=paper/lpd_parallel_ellipses ... \
        +callbacks.sync_sites._target_=learnct.bench.sync_sites.SyncSites \
        +callbacks.sync_sites.out=syncs.md

Without CUDA the table says that nothing could be recorded.
"""

from __future__ import annotations

import collections
import traceback
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch

import learnct

__all__ = ["SyncSites"]

#: The beginning of the warning torch's sync debug mode gives.
SYNC_WARNING = "called a synchronizing CUDA operation"
#: The packages whose frames identify a site.
PACKAGES = tuple(str(Path(m.__file__).parent) for m in (learnct, L))


class SyncSites(L.Callback):
    """Record the host synchronisations of training steps ``start`` to ``start + steps - 1``
    (``trainer.global_step`` at the batch's start) and write them to ``out``.

    Args:
        out: the Markdown file to write.
        start: the first recorded step (after the compile and the warm-up).
        steps: how many steps to record.
        frames: how many of the innermost learnct/Lightning frames identify a site.
    """

    def __init__(self, out: str | Path, start: int = 50, steps: int = 20, frames: int = 3) -> None:
        self.out, self.start, self.steps, self.frames = Path(out), start, steps, frames
        self.counts: collections.Counter[tuple[str, ...]] = collections.Counter()
        self._context: Any = None
        self._recorded = 0
        self._note = ""

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: Any, batch: Any, i: int) -> None:
        if self._context is None and not self._recorded and trainer.global_step >= self.start:
            self._begin()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if self._context is not None:
            self._recorded += 1
            if self._recorded >= self.steps:
                self._end()

    def on_train_end(self, trainer: L.Trainer, pl_module: Any) -> None:
        if self._context is not None:
            self._end()
        elif not self._recorded:
            self._note = f"the run ended before step {self.start}: nothing recorded"
            self.write()

    def _begin(self) -> None:
        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("always")
        warnings.showwarning = self._show
        try:
            torch.cuda.set_sync_debug_mode("warn")
        except (AssertionError, RuntimeError) as err:  # a CPU-only torch
            self._note = f"no CUDA sync debug mode here ({err}): nothing recorded"

    def _end(self) -> None:
        if not self._note:
            torch.cuda.set_sync_debug_mode("default")
        self._context.__exit__(None, None, None)
        self._context = None
        self.write()

    def _show(self, message: Any, category: Any, filename: str, lineno: int, *args: Any) -> None:
        """``warnings.showwarning`` during the window: count a sync warning by its site."""
        if SYNC_WARNING not in str(message):
            return
        stack = traceback.extract_stack()[:-1]  # without this function
        ours = [f for f in stack if f.filename.startswith(PACKAGES)]
        site = [f"{Path(filename).name}:{lineno}"]
        site += [f"{Path(f.filename).name}:{f.lineno} {f.name}" for f in ours[-self.frames :]]
        self.counts[tuple(site)] += 1

    def write(self) -> Path:
        """The table of sites (most frequent first), per recorded step."""
        lines = [
            "# Host synchronisations in Lightning training steps",
            "",
            f"Steps recorded: {self._recorded} (from step {self.start}). {self._note}".rstrip(),
            "",
            "| syncs per step | site | learnct / Lightning frames (innermost last) |",
            "|---|---|---|",
        ]
        for site, count in self.counts.most_common():
            per_step = count / max(1, self._recorded)
            lines.append(f"| {per_step:.2f} | {site[0]} | {'; '.join(site[1:]) or '-'} |")
        if not self.counts and not self._note:
            lines.append("| 0 | none | - |")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text("\n".join(lines) + "\n")
        return self.out
