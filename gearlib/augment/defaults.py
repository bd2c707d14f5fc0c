"""Default settings of the augmentations and of the JSD loss, each defined once and used everywhere else.

Plain Python values (no torch), so profiles and keyword defaults can refer to them by name.
"""

from __future__ import annotations

from typing import Dict, NamedTuple


class Mixing(NamedTuple):
    """Chain width w, chain depth d (-1: uniform in 1..3 per chain, 0: identity) and JSD views J."""

    width: int
    depth: int
    views: int

    def knobs(self) -> Dict[str, int]:
        """The settings as keyword arguments of `mix_views` / `make_augment`."""
        return dict(self._asdict())


# ERA (GEARnn paper, Sec. 4.2; the (1, 3, 4) row of Table 8 in Appendix B.1): one chain of three ops per
# view, clean + 3 augmented views in the JSD.
ERA_DEFAULTS = Mixing(width=1, depth=3, views=4)
# The cheaper ERA variant `era_j3`: the same chains, clean + 2 augmented views.
ERA_J3 = ERA_DEFAULTS._replace(views=3)
# AugMix (Hendrycks et al.) and PRIME (Modas et al.), which mixes its primitives the same way:
# three chains of random depth per view, clean + 2 augmented views.
AUGMIX_DEFAULTS = Mixing(width=3, depth=-1, views=3)

AUGMIX_SEVERITY = 3.0  # S, the upper bound of an AugMix op's level l ~ U(0.1, S), out of 10
MIX_ALPHA = 1.0  # concentration of the Dirichlet chain weights and of the Beta mixing weight m
JSD_LAMBDA = 12.0  # lambda of L = CE(clean) + lambda * JSD (AugMix and GEARnn)
