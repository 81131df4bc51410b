"""What a terminal user sees of the libraries while a run goes on: each Lightning message once,
none of its advertisements, no known deprecation noise from inside Lightning.

:func:`quiet_console` (called once by :func:`learnct.run.cli.run_from_cli`, before the run):

- Lightning gives the ``lightning`` logger a stderr handler of its own when it is imported. Under
  Hydra's job logging (the console and ``<run folder>/<job name>.log``, configs/hydra/default.yaml)
  every Lightning message was printed twice. When the root logger has handlers, Lightning's own
  is removed, so its messages reach the console and the log file once, through Hydra's (the rule
  Lightning applies to ``lightning.pytorch`` and ``lightning.fabric`` itself).
- Lightning's "💡 Tip: ..." lines (advertising its cloud logger and model registry) are dropped.
- torch 2.13's ``FutureWarning`` "`isinstance(treespec, LeafSpec)` is deprecated", raised in
  Lightning 2.6's ``lightning.pytorch.utilities._pytree`` at every fit and test, is ignored
  (that message from that module only).

Other loggers and warnings are left as they are. W&B's "anonymous setting" warning is fixed where
it arises (:mod:`learnct.run.wandb_logger`), Lightning's test table by ``verbose=False``
(:mod:`learnct.run.pipeline` prints the results table) and the progress bar by
:mod:`learnct.run.progress`.
"""

from __future__ import annotations

import logging
import warnings

__all__ = ["LIGHTNING_TIP", "quiet_console"]

#: how Lightning's advertising lines start
LIGHTNING_TIP = "💡 Tip:"
#: the logger Lightning's ``rank_zero_info`` messages (the tips among them) are logged on
_RANK_ZERO_LOGGER = "lightning.pytorch.utilities.rank_zero"


class _DropLightningTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(LIGHTNING_TIP)


def quiet_console() -> None:
    """Apply the module docstring's settings to this process (idempotent)."""
    import lightning  # noqa: F401  (its import adds the handler that is removed here)

    lightning_logger = logging.getLogger("lightning")
    if logging.getLogger().handlers:
        for handler in list(lightning_logger.handlers):
            if type(handler) is logging.StreamHandler:  # not a FileHandler (a subclass)
                lightning_logger.removeHandler(handler)
    rank_zero = logging.getLogger(_RANK_ZERO_LOGGER)
    if not any(isinstance(f, _DropLightningTips) for f in rank_zero.filters):
        rank_zero.addFilter(_DropLightningTips())
    warnings.filterwarnings(
        "ignore",
        message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
        category=FutureWarning,
        module=r"lightning\.pytorch\.utilities\._pytree",
    )
