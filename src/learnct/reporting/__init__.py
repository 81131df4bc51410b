"""What ``make report`` draws from finished runs: methods rebuilt from their run folders, the
multi-method comparison figure and the dose curve."""

from learnct.reporting.comparison import comparison_figure
from learnct.reporting.dose_curve import DOSE_FIELDS, dose_curve, plot_dose_curve
from learnct.reporting.run_methods import (
    ReportError,
    RunMethod,
    load_run_method,
    method_checkpoint,
    reference_datamodule,
)

__all__ = [
    "DOSE_FIELDS",
    "ReportError",
    "RunMethod",
    "comparison_figure",
    "dose_curve",
    "load_run_method",
    "method_checkpoint",
    "plot_dose_curve",
    "reference_datamodule",
]
