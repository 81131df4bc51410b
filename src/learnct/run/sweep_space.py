"""A sweep's search space: Hydra override strings -> Optuna distributions.

``hydra.sweeper.params`` (configs/hparams_search) and the sweep overrides of the command line
use Hydra's override grammar, as hydra-optuna-sweeper did:

- ``choice(a, b, ...)`` (or ``a,b,...``): ``CategoricalDistribution``;
- ``interval(lo, hi)``: ``FloatDistribution(lo, hi)``; ``tag(log, interval(lo, hi))`` log-uniform;
  ``tag(int, interval(lo, hi))`` integers (``IntDistribution``);
- ``range(start, stop, step)``: ``IntDistribution`` (integers) or ``FloatDistribution`` with
  ``step``, from ``start`` to the last value below ``stop`` (Python's ``range``).

Any other value is a fixed override that every trial gets.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import IntervalSweep, Override, RangeSweep, Transformer

__all__ = ["search_space"]


def search_space(
    params: Mapping[str, Any], arguments: Iterable[str]
) -> tuple[dict[str, Any], list[str]]:
    """``(distributions by parameter name, fixed overrides)`` from ``hydra.sweeper.params``
    and the command line's overrides (which win for the same key)."""
    parser = OverridesParser.create()
    searched = parser.parse_overrides([f"{k}={v}" for k, v in params.items()])
    overrides = {o.get_key_element(): o for o in searched}
    overrides.update((o.get_key_element(), o) for o in parser.parse_overrides(list(arguments)))
    space = {}
    fixed = []
    for key, override in overrides.items():
        if override.is_sweep_override():
            space[key] = _distribution(override)
        else:
            fixed.append(override.input_line)
    return space, fixed


def _distribution(override: Override) -> Any:
    import optuna.distributions as od

    sweep = override.value()
    key = override.get_key_element()
    if override.is_choice_sweep():  # values as the override grammar writes them
        return od.CategoricalDistribution(list(override.sweep_iterator(Transformer.encode)))
    if isinstance(sweep, IntervalSweep):
        if "int" in sweep.tags:
            return od.IntDistribution(int(sweep.start), int(sweep.end), log="log" in sweep.tags)
        return od.FloatDistribution(sweep.start, sweep.end, log="log" in sweep.tags)
    if isinstance(sweep, RangeSweep):
        if "log" in sweep.tags:
            raise ValueError(f"{key}: range() takes no log tag; use tag(log, interval(lo, hi))")
        values = list(sweep.range())
        low, high, step = min(values), max(values), abs(sweep.step)
        if all(isinstance(x, int) for x in (*values, step)):
            return od.IntDistribution(low, high, step=step)
        return od.FloatDistribution(low, high, step=step)
    raise ValueError(
        f"{key}: {override.input_line!r} is not a search space Optuna can sample; use "
        "choice(...), interval(lo, hi), tag(log, interval(lo, hi)) or range(start, stop, step)"
    )
