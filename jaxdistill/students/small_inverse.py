"""Inverses of batches of small matrices by Gauss-Jordan elimination without
pivoting, written in plain XLA operations (docs/design.md fact 14).

The K-class logit flow inverts K matrices of size n every solver step
(``links.logit_shifted_solver``).  On the CPU, ``jnp.linalg.inv`` makes
LAPACK calls per matrix (an LU, then two triangular solves), and for the
sizes of a transfer set their per-call cost, not their arithmetic, is most
of a step.  ``unpivoted_inverse`` instead runs the m elimination steps as m
elementwise updates of the whole batch [..., m, m] at once, which XLA fuses
and vectorises across the batch.

Without pivoting the elimination is only safe for matrices whose leading
pivots stay large: symmetric positive definite matrices and their column
scalings A = M D (M positive definite, D > 0 diagonal; the multipliers are
M's, and elimination on a positive definite matrix does not grow its
entries).  The K-class stage matrices c I + (G/n) diag(s_k) are of that
kind for forward time (c > 0): they equal (c diag(s_k)^{-1} + G/n) diag(s_k)
(a probability that underflows to 0 leaves the column c e_i, whose pivot c
eliminates nothing).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

UNPIVOTED_INVERSE_SIZES = range(16, 29)
"""Matrix sizes m for which ``prefers_unpivoted_inverse`` chooses the
unrolled elimination on the CPU.  Measured on the digits K-class flow
(K = 10, d = 64, chunks of 256 sets, the 2-core CPU,
benchmarks/results/vm-2cpu-2026-12-05-kclass-inverse.md): 1.5-1.8x the
sets/s of ``jnp.linalg.inv`` at n = 16 ... 28, for 1.5-3 s more
compilation; no faster at n <= 12 (the LAPACK calls are cheap there) and
slower at n >= 32 (the batch's [256, K, n, n] working arrays leave the
cache, and the unrolled program compiles for longer: +12 s at n = 40)."""


def prefers_unpivoted_inverse(m: int) -> bool:
    """Whether ``unpivoted_inverse`` is the faster inverse of m-square
    matrices on the default backend (``UNPIVOTED_INVERSE_SIZES``, CPU only:
    accelerators keep their batched LU until measured there)."""
    return jax.default_backend() == "cpu" and m in UNPIVOTED_INVERSE_SIZES


def unpivoted_inverse(A: Float[Array, "... m m"]) -> Float[Array, "... m m"]:
    """The inverses of the matrices A [..., m, m] by in-place Gauss-Jordan
    elimination without pivoting (module docstring: only for matrices whose
    elimination needs no pivoting, such as positive definite matrices and
    their column scalings).

    Step k divides row k by the pivot a = A_kk, subtracts A_ik times it
    from every other row i, and stores -A_ik / a in column k and 1 / a at
    (k, k); after m steps A holds its inverse.  The m steps are unrolled
    (m is static): each is one fused elementwise update of the batch."""
    m = A.shape[-1]
    index = jnp.arange(m)
    for k in range(m):
        is_k = index == k
        inv_pivot = 1.0 / A[..., k, k]  # [...]
        row = A[..., k, :] * inv_pivot[..., None]  # row k / a
        col = jnp.where(is_k, 0.0, A[..., :, k])  # column k, 0 at row k
        # rows i != k lose A_ik (row k / a); row k becomes row k / a; then column k: -A_ik / a, and 1 / a at (k, k)
        updated = jnp.where(is_k[:, None], row[..., None, :], A - col[..., :, None] * row[..., None, :])
        new_col = jnp.where(is_k, inv_pivot[..., None], -col * inv_pivot[..., None])
        A = jnp.where(is_k[None, :], new_col[..., :, None], updated)
    return A


__all__ = ["UNPIVOTED_INVERSE_SIZES", "prefers_unpivoted_inverse", "unpivoted_inverse"]
