"""learnct's Optuna sweeper for Hydra (``hydra/sweeper=optuna``); found by Hydra's plugin scan
of the ``hydra_plugins`` namespace package."""
