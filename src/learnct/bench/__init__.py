"""Every benchmark of ``make bench`` (``python -m learnct.bench``, ``learnct-bench``)."""
