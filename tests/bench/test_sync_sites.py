"""``SyncSites``: the host synchronisations of a window of Lightning training steps, counted
per call site (here a fake: torch's sync debug mode is replaced by a module that warns as it
would on every other step)."""

from __future__ import annotations

import warnings

import lightning as L
import torch
from torch.utils.data import DataLoader

from learnct.bench import sync_sites
from learnct.bench.sync_sites import SYNC_WARNING, SyncSites


class _Syncing(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        if self.global_step % 2:
            warnings.warn(f"{SYNC_WARNING} (fake)", UserWarning, stacklevel=1)  # the site
        warnings.warn("another warning", UserWarning, stacklevel=1)
        return (self.weight - batch).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.ones(10, 1), batch_size=1)


def _fit(callback: SyncSites, steps: int) -> None:
    trainer = L.Trainer(
        max_steps=steps,
        callbacks=[callback],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(_Syncing())


def test_sync_sites_counts_a_windows_syncs_per_site(tmp_path, monkeypatch):
    modes = []
    monkeypatch.setattr(sync_sites.torch.cuda, "set_sync_debug_mode", modes.append)
    callback = SyncSites(tmp_path / "syncs.md", start=3, steps=4)
    _fit(callback, 10)
    assert modes == ["warn", "default"]  # on for the window only
    ((site, count),) = callback.counts.items()  # steps 3 and 5 of steps 3-6; no other warning
    assert count == 2 and site[0].startswith("test_sync_sites.py:")
    assert any("training_step" in frame for frame in site[1:])  # Lightning's frames
    text = (tmp_path / "syncs.md").read_text()
    assert "Steps recorded: 4 (from step 3)." in text
    assert f"| 0.50 | {site[0]} |" in text


def test_sync_sites_says_when_nothing_could_be_recorded(tmp_path):
    callback = SyncSites(tmp_path / "syncs.md", start=100)
    _fit(callback, 3)
    assert "the run ended before step 100: nothing recorded" in (tmp_path / "syncs.md").read_text()
