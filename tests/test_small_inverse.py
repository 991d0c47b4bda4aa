"""``students.small_inverse``: Gauss-Jordan inverses without pivoting for the
matrices whose elimination needs none (positive definite matrices and their
column scalings), and the sizes for which the K-class flow uses them."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdistill import precision
from jaxdistill.students.small_inverse import UNPIVOTED_INVERSE_SIZES, prefers_unpivoted_inverse, unpivoted_inverse


def _spd(rng, batch, m, cond):
    """Positive definite matrices [batch, m, m] with condition number ``cond``."""
    Q, _ = np.linalg.qr(rng.normal(size=(batch, m, m)))
    eig = np.logspace(0, -np.log10(cond), m)
    return np.einsum("bij,j,bkj->bik", Q, eig, Q)


@pytest.mark.parametrize("m", [1, 5, 20])
@pytest.mark.parametrize("cond", [1e1, 1e6])
def test_inverse_of_positive_definite_matrices(m, cond):
    rng = np.random.default_rng(m)
    M = _spd(rng, 8, m, cond)
    with precision():
        inv = np.asarray(unpivoted_inverse(jnp.asarray(M)))
    exact = np.linalg.inv(M)
    err = np.linalg.norm(inv - exact, axis=(1, 2)) / np.linalg.norm(exact, axis=(1, 2))
    # forward error of a stable inverse: a small multiple of cond * eps
    assert err.max() <= 50 * cond * np.finfo(np.float64).eps, err.max()
    np.testing.assert_allclose(np.einsum("bij,bjk->bik", M, inv), np.broadcast_to(np.eye(m), M.shape),
                               atol=50 * cond * np.finfo(np.float64).eps)


def test_column_scalings_of_positive_definite_matrices():
    """A = c I + G diag(s) = (c diag(s)^{-1} + G) diag(s) with s down to 1e-14 and c down to 1e-14
    (the K-class stage matrices of the last flow steps): the multipliers are those of the
    positive definite c diag(s)^{-1} + G, so diag(s) A^{-1} = (c diag(s)^{-1} + G)^{-1} comes out
    as accurately as that matrix's own inverse, however small s."""
    rng = np.random.default_rng(7)
    m = 20
    X = rng.normal(size=(16, m, 30))
    G = np.einsum("bid,bjd->bij", X, X) / m
    s = 10.0 ** rng.uniform(-14, 0, size=(16, m))
    for c in (1.0, 1e-6, 1e-14):
        A = c * np.eye(m) + G * s[:, None, :]
        with precision():
            inv = np.asarray(unpivoted_inverse(jnp.asarray(A)))
        scaled = s[:, :, None] * inv  # diag(s) A^{-1}
        M = c / s[:, :, None] * np.eye(m) + G
        exact = np.linalg.inv(M)
        err = np.linalg.norm(scaled - exact, axis=(1, 2)) / np.linalg.norm(exact, axis=(1, 2))
        # measured: 6e-16 (c = 1) to 3e-15 (c = 1e-14), as jnp.linalg.inv's 4e-16 to 2e-15
        assert err.max() <= 100 * np.finfo(np.float64).eps * np.linalg.cond(G).max(), (c, err.max())


def test_batch_axes_and_dtype():
    rng = np.random.default_rng(3)
    M = _spd(rng, 6, 4, 10.0).reshape(2, 3, 4, 4)
    inv = unpivoted_inverse(jnp.asarray(M, jnp.float32))
    assert inv.shape == (2, 3, 4, 4) and inv.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(inv), np.linalg.inv(M), rtol=1e-4, atol=1e-4)
    # vmapped and batched give the same bits
    np.testing.assert_array_equal(np.asarray(jax.vmap(unpivoted_inverse)(jnp.asarray(M, jnp.float32))),
                                  np.asarray(inv))


def test_the_sizes_it_is_used_for():
    """Only where measured faster (CPU, n = 16 ... 28; docs/design.md fact 14)."""
    assert list(UNPIVOTED_INVERSE_SIZES) == list(range(16, 29))
    chosen = [m for m in range(1, 65) if prefers_unpivoted_inverse(m)]
    assert chosen == (list(range(16, 29)) if jax.default_backend() == "cpu" else [])
