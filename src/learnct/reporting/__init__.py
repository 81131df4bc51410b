"""What ``make report`` draws from finished runs: methods rebuilt from their run folders, the
multi-method comparison figure and the dose curve."""

from learnct.reporting.comparison import comparison_figure
from learnct.reporting.dose_curve import DOSE_FIELDS, dose_curve, plot_dose_curve
from learnct.reporting.run_methods import RunMethod, load_run_method, reference_datamodule

__all__ = [
    "DOSE_FIELDS",
    "RunMethod",
    "comparison_figure",
    "dose_curve",
    "load_run_method",
    "plot_dose_curve",
    "reference_datamodule",
]
