"""Training and evaluation data: analytic phantoms and data sets."""
