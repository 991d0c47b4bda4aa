"""The learner interface shared by every student.

A learner is a frozen (hashable) dataclass with a ``name`` and a method
``fit(key, X, u) -> LearnerOutput`` for ONE transfer set (gymnax style: the
key comes first, one function for one set, ``vmap`` for many).  ``key`` is
the set's own key, for learners with randomness (deep-linear init, w_delta);
deterministic learners ignore it.  ``simulate.distill`` vmaps ``fit`` over
sets and chunks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..teachers import cross_entropy
from .closed_form import closed_form, reduce_data
from .discrete import GDConfig, gradient_descent
from .flow import CONVERGED, RANK_DEFICIENT, FlowConfig, gradient_flow


class LearnerOutput(eqx.Module):
    """What every learner returns for one set.

    Attributes:
        w: the student, [d].
        status: status code (``students.STATUS_NAMES``).
        num_steps: solver / optimiser steps (0 for closed forms).
        loss: final training loss L^1 (eq. 1).
        extras: learner-specific per-set scalars (e.g. the eq. 76 bound).
    """

    w: Float[Array, " d"]
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    loss: Float[Array, ""]
    extras: dict = eqx.field(default_factory=dict)


@dataclass(frozen=True)
class ClosedFormLearner:
    """Thm 1 (eq. 6): w_hat, computed with a thin QR (no Gram inverse)."""

    name: str = field(default="closed-form", init=False)

    def fit(self, key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"]) -> LearnerOutput:
        red = reduce_data(X)
        w = closed_form(X, u)
        ok = red.rank_ok & jnp.all(jnp.isfinite(w))
        return LearnerOutput(
            w=w,
            status=jnp.where(ok, CONVERGED, RANK_DEFICIENT).astype(jnp.int32),
            num_steps=jnp.asarray(0, jnp.int32),
            loss=cross_entropy(X @ w, u),
        )


@dataclass(frozen=True)
class FlowLearner:
    """Gradient flow of eq. 3 (N = 1) with diffrax, to a steady state."""

    config: FlowConfig = FlowConfig()
    name: str = field(default="flow", init=False)

    def fit(self, key, X, u) -> LearnerOutput:
        res = gradient_flow(X, u, self.config)
        return LearnerOutput(
            w=res.w,
            status=res.status,
            num_steps=res.num_steps,
            loss=res.loss,
            extras={"t_final": res.t_final, "newton_rel": res.newton_rel},
        )


@dataclass(frozen=True)
class GDLearner:
    """Discrete optimiser (optax) for a fixed number of steps."""

    config: GDConfig = GDConfig()
    name: str = field(default="gd", init=False)

    def fit(self, key, X, u) -> LearnerOutput:
        res = gradient_descent(X, u, self.config)
        return LearnerOutput(w=res.w, status=res.status, num_steps=res.num_steps, loss=res.loss)
