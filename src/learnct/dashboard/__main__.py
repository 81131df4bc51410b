"""``python -m learnct.dashboard``: same as ``learnct-dashboard``."""

from learnct.dashboard.build import main

main()
