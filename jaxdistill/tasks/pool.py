"""A finite pool of inputs with a teacher vector: how real data enters
(e.g. the MNIST 0/1 task of ``jaxdistill.datasets``)."""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..validation import JaxDistillError, check_array, check_int
from .base import EXTRA_STREAM, AbstractTask, as_float64, check_teacher
from .riskmath import mc_risk


@final
class PoolTask(AbstractTask):
    """A finite pool of inputs (rows of ``inputs``) with a teacher vector.

    Transfer sets are drawn uniformly *without replacement* from the pool
    (``sample_indices``), so n <= pool size; the extra input of
    ``sample_nested`` is drawn from the inputs not in X.  ``held_out`` (the
    inputs of Monte-Carlo risk) is ``test_inputs`` when given (e.g. the MNIST
    test images) and the whole pool otherwise, and the exact risk is the
    disagreement with the teacher over exactly those inputs.

    Args:
        inputs: the pool, [P, d] with d >= 2.
        w_star: the teacher, [d].
        test_inputs: optional held-out inputs, [M, d].
        label: a name for configs (e.g. the file the pool came from).
    """

    pool: Float[Array, "P d"]
    w_star: Float[Array, " d"]
    test_inputs: Float[Array, "M d"] | None
    label: str = eqx.field(static=True)
    name: ClassVar[str] = "pool"

    def __init__(self, inputs, w_star, *, test_inputs=None, label: str = "pool"):
        pool = check_array("inputs", inputs, ndim=2, shape_text="[P, d]")
        if pool.shape[1] < 2:
            raise JaxDistillError(f"inputs must have d >= 2 columns, got shape {pool.shape}")
        self.w_star = check_teacher(w_star, pool.shape[1])
        self.pool = as_float64(pool)
        if test_inputs is not None:
            test = check_array("test_inputs", test_inputs, ndim=2, shape_text=f"[M, {pool.shape[1]}]")
            if test.shape[1] != pool.shape[1]:
                raise JaxDistillError(f"test_inputs must have shape [M, {pool.shape[1]}], got shape {test.shape}")
            self.test_inputs = as_float64(test)
        else:
            self.test_inputs = None
        self.label = label

    def __check_init__(self):
        if self.test_inputs is not None and jnp.shape(self.test_inputs)[1:] != (self.d,):
            raise JaxDistillError(f"test_inputs must have shape [M, {self.d}], got shape {jnp.shape(self.test_inputs)}")

    @property
    def d(self) -> int:
        return self.pool.shape[1]

    @property
    def pool_size(self) -> int:
        return self.pool.shape[0]

    def check_n(self, n: int, extra: int = 0, *, name: str = "n") -> int:
        """n (an integer >= 1) plus ``extra`` distinct inputs must fit in the pool."""
        extra = check_int("extra", extra, minimum=0)
        top = self.pool_size - extra
        if extra == 0:
            why = f"{name} must be <= the pool size {self.pool_size} (sampling without replacement"
        else:
            extras = "the extra input" if extra == 1 else f"the {extra} extra inputs"
            why = f"{name} must be <= pool size - {extra} = {top} (X and {extras} are distinct"
        if top < 1:
            raise JaxDistillError(f"{why}), but the pool has only {self.pool_size} inputs")
        n = check_int(name, n, minimum=1)
        if n > top:
            raise JaxDistillError(f"{why}; allowed range 1 <= {name} <= {top}), got {n}")
        return n

    def sample_indices(self, key: PRNGKeyArray, num: int) -> Int[Array, " num"]:
        """Indices of ``num`` distinct pool inputs drawn uniformly (the rows ``sample`` returns)."""
        if num > self.pool_size:
            raise JaxDistillError(f"n must be <= the pool size {self.pool_size} (sampling without replacement), got {num}")
        return jax.random.choice(key, self.pool_size, (num,), replace=False)

    def sample(self, key, num):
        return jnp.asarray(self.pool)[self.sample_indices(key, num)]

    def sample_nested(self, key, n):
        """X = sample(key, n) and an extra input drawn uniformly from the pool
        minus X's rows with fold_in(key, EXTRA_STREAM)."""
        self.check_n(n, 1)
        idx = self.sample_indices(key, n)
        pool = jnp.asarray(self.pool)
        X = pool[idx]
        free = jnp.ones(self.pool_size, X.dtype).at[idx].set(0.0)
        j = jax.random.choice(jax.random.fold_in(key, EXTRA_STREAM), self.pool_size, (), p=free / jnp.sum(free))
        return X, pool[j]

    def held_out(self, key, num):
        """The test inputs (or the whole pool); ``key`` and ``num`` are unused."""
        return jnp.asarray(self.test_inputs if self.test_inputs is not None else self.pool)

    def finite_support(self):
        return self.pool

    @property
    def has_exact_risk(self) -> bool:
        return True

    def exact_risk(self, W):
        """The disagreement rate with the teacher over every held-out input."""
        return mc_risk(W, self.held_out(None, 0), self.w_star)[0]

    def config(self) -> dict:
        return {"task": self.name, "label": self.label, "d": self.d, "pool_size": self.pool_size}


__all__ = ["PoolTask"]
