"""``RunIdentityStamp``: the run's id and settings in every checkpoint it saves
(``checkpoint["learnct_run"]``), so that a checkpoint names the run it belongs to
(:mod:`learnct.run.identity`)."""

from __future__ import annotations

from typing import Any

import lightning as L

from learnct.run.identity import RunIdentity

__all__ = ["RunIdentityStamp"]


class RunIdentityStamp(L.Callback):
    """Writes ``{"id", "settings"}`` of ``identity`` into each checkpoint."""

    def __init__(self, identity: RunIdentity) -> None:
        self.identity = identity

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict) -> None:
        checkpoint["learnct_run"] = {"id": self.identity.id, "settings": self.identity.settings}
