"""The order in which a run's models appear in every plot, table and chapter: the config's, with the
comparison's reference first (never alphabetical: a user lists the models in the order they mean)."""

from __future__ import annotations


def model_order(cfg: dict) -> list[str]:
    """The models of a validated config (``comparison.reference`` filled in) in config order, the
    reference first."""
    reference = cfg["comparison"]["reference"]
    return [reference] + [m for m in cfg["models"] if m != reference]
