"""A LightningModule with one weight, for tests of callbacks and loggers: each step is one
optimiser step, each validation logs ``val/psnr`` = the step count (so every validation is a
new best)."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader


class ToyModule(L.LightningModule):
    def __init__(self, train_batches: int = 2) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.train_batches = train_batches

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        loss = (self.weight - batch).pow(2).mean()
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        self.log("val/psnr", float(self.global_step), prog_bar=True)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self) -> DataLoader:
        return DataLoader(torch.ones(self.train_batches, 1), batch_size=1)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(torch.ones(1, 1), batch_size=1)
