"""The run machinery: ``build`` (config -> physics, data, method, trainer), ``pipeline`` (fit
and test), ``results`` (the run folder: results schema, writer, reader, discovery, checkpoint
choice), ``resume``, ``cli`` (how the entry points report failures), and what makes runs safe:
``config_checks``, ``atomic_checkpoint``, ``nonfinite``, ``wandb_fallback``,
``sweep_failures``, ``sweep_storage``, ``grouping``, ``testset_hash`` and ``provenance``
(docs/reliability.md); the parts of sweeps (the sweeper is ``hydra_plugins.learnct_optuna``):
``sweep_space`` (search spaces), ``sweep_pruning`` (a trial's pruning callback) and
``sweep_table`` (the closing table of trials); and what a user sees: ``wandb_logger``
(checkpoint artifacts), ``progress`` (the step bar) and ``console`` (log handlers, library
noise). torch and Lightning load only when a run starts."""

from learnct.run.build import CONFIG_DIR, build_physics
from learnct.run.config_checks import ConfigError
from learnct.run.grouping import register_resolvers
from learnct.run.pipeline import RunResult, run

register_resolvers()  # the loggers' group/name resolvers (configs/logger/wandb.yaml)

__all__ = ["CONFIG_DIR", "ConfigError", "RunResult", "build_physics", "run"]
