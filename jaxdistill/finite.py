"""The non-finite stand-in of every set program.

A set whose sampled inputs or teacher outputs are not finite (an overflowed
heavy-tailed draw, a NaN from a user task) must not stall a batch: its data
are replaced by a harmless stand-in (an identity-like matrix, whose solver
finishes at once) and the program marks the set ``NON_FINITE``
(``jaxdistill.status``).  Every program draws its set, calls
``replace_non_finite`` once and fits what it returns; a finite set passes
through unchanged (``jnp.where`` selects its arrays bit for bit).
"""

from __future__ import annotations

from typing import Sequence

import jax.numpy as jnp
from jaxtyping import Array, Bool


def replace_non_finite(arrays: Sequence[Array], stand_ins: Sequence[Array], *,
                       allow_inf: Sequence[bool] | None = None) -> tuple[Bool[Array, ""], tuple[Array, ...]]:
    """Check one set's arrays and swap them all for their stand-ins if any fails.

    Args:
        arrays: the set's arrays (e.g. X [n, d] and teacher logits u [n]).
        stand_ins: one replacement per array, of its shape and dtype.
        allow_inf: per array, whether +-inf is a legitimate value and only NaN
            a failure (hard labels' logits +-inf, log-probabilities -inf of
            zero-probability classes); default False for every array.

    Returns:
        (finite, arrays): whether the set passed, and its arrays (the
        stand-ins all together where it did not).
    """
    allow_inf = (False,) * len(arrays) if allow_inf is None else tuple(allow_inf)
    if not len(arrays) == len(stand_ins) == len(allow_inf):
        raise ValueError("replace_non_finite needs one stand-in and one allow_inf flag per array")
    finite = jnp.asarray(True)
    for a, inf_ok in zip(arrays, allow_inf):
        finite = finite & (~jnp.any(jnp.isnan(a)) if inf_ok else jnp.all(jnp.isfinite(a)))
    return finite, tuple(jnp.where(finite, a, s) for a, s in zip(arrays, stand_ins))


__all__ = ["replace_non_finite"]
