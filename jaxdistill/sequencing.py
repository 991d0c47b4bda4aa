"""Order independent LAPACK calls inside one compiled function.

jaxlib 0.10 splits every batched LAPACK call (QR, Householder product,
Cholesky, triangular solve, LU) over XLA's CPU thread pool and blocks the
calling thread until the pieces are done.  When two such calls have no data
dependency, XLA may start both at once; on a 2-core machine both pool
threads then wait for pieces nobody is free to run, and the program hangs
(docs/jax-cpu-lapack-deadlock.md, docs/design.md fact 11).
``jax.lax.optimization_barrier`` does not help: XLA's CPU pipeline removes
it before execution.  A real data dependency does: ``after(x, *done)`` is
``x`` plus an exact zero computed from ``done``, so the call that consumes
it cannot start before ``done`` exists.  The values are unchanged (x + 0.0
is x for every finite x and NaN/inf stay as they are), so results are
bit-identical.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def after(x: jax.Array, *done) -> jax.Array:
    """``x``, but only once every array (or pytree of arrays) in ``done`` is computed."""
    leaves = [leaf for d in done for leaf in jax.tree.leaves(d)]
    zero = jnp.zeros((), x.dtype)
    for leaf in leaves:
        zero = zero + jnp.isnan(jnp.sum(leaf)).astype(x.dtype) * 0
    return x + zero


__all__ = ["after"]
