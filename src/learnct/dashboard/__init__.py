"""``learnct-dashboard`` / ``make dashboard``: the offline experiment dashboard.

Reads the run folders under ``logs/`` (resolved configs, CSV metrics, results, checkpoint
metadata), the Optuna sweep databases and the ``make report`` outputs under ``experiments/``,
and writes one self-contained folder (``index.html`` plus ``assets/``) that opens from disk
with no server and no network.
"""

from learnct.dashboard.build import build_dashboard, main

__all__ = ["build_dashboard", "main"]
