"""Issue 21: one non-finite stand-in (``jaxdistill.finite.replace_non_finite``),
used by every set program, the nested (monotonicity) one included."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxdistill as jd
from jaxdistill.analysis.monotonicity import monotonicity_index
from jaxdistill.finite import replace_non_finite


def test_a_finite_set_passes_bit_for_bit_and_a_bad_one_is_swapped_whole():
    X = jnp.array([[1.0, 2.0], [3.0, 4.0]])
    u = jnp.array([jnp.inf, -jnp.inf])  # hard labels' logits
    sX, su = jnp.eye(2), jnp.zeros(2)
    ok, (X1, u1) = replace_non_finite((X, u), (sX, su), allow_inf=(False, True))
    assert bool(ok) and np.array_equal(X1, X) and np.array_equal(u1, u)
    ok, (X2, u2) = replace_non_finite((X, u), (sX, su))  # +-inf not allowed: the whole set is replaced
    assert not bool(ok) and np.array_equal(X2, sX) and np.array_equal(u2, su)
    ok, (X3, u3) = replace_non_finite((X.at[0, 0].set(jnp.nan), u), (sX, su), allow_inf=(False, True))
    assert not bool(ok) and np.array_equal(X3, sX) and np.array_equal(u3, su)
    with pytest.raises(ValueError):
        replace_non_finite((X, u), (sX,))


def test_the_nested_program_marks_non_finite_pairs():
    """NestedSetProgram had no stand-in: a NaN pair is now fitted on the
    stand-in and reported as ``non_finite``; the good pairs are unaffected."""
    d, n, num_sets, seed = 6, 3, 8, 5

    def sampler(key, num):
        x = jax.random.normal(key, (num, d))
        return jnp.where(jax.random.uniform(jax.random.fold_in(key, 99)) < 0.4, jnp.nan, x)

    task = jd.CustomTask(sampler, np.eye(d)[0])
    est = monotonicity_index(seed, task, n, num_sets, kind="risk", risk="mc", num_test=200)
    assert est.num_failed > 0
    assert {f["status"] for f in est.failed_sets} == {"non_finite"}
    assert est.num_sets == num_sets - est.num_failed
