"""Every benchmark (``make bench``: ``python -m learnct.bench``, ``learnct-bench``).

One module per section of ``experiments/benchmarks/<section>_<cpu|gpu>.md``:
:mod:`~learnct.bench.projectors` (and ``time_projector``, the one projector timer),
:mod:`~learnct.bench.fbp`, :mod:`~learnct.bench.methods`, :mod:`~learnct.bench.training`,
:mod:`~learnct.bench.pipeline`; :mod:`~learnct.bench.triton_tuning` writes the triton
layout/block table (``python -m learnct.bench.triton_tuning``, CUDA);
:mod:`~learnct.bench.timing` (median after warm-up, CUDA synchronised) and
:mod:`~learnct.bench.tables` (Markdown) serve them all; ``__main__`` is the CLI.
"""
