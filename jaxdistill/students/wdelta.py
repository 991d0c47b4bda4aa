"""Reduced-bias learners w_delta (section 5.2, Fig. 4 and 5).

    w_delta = w_hat + delta * (||w_hat|| / ||q||) * q,

with w_hat the gradient-descent distillation solution (Thm 1, eq. 6) and
q a Gaussian vector in the orthogonal complement of span(X) (X^T q = 0 in
the paper's column convention; ``X @ q = 0`` with rows as inputs here).
Every w_delta has the same logits X w_delta = X w_hat, hence globally
minimises the distillation loss L^1 (eq. 1, Lemma B.3); delta = 0 is the
gradient-flow learner and |delta| -> infinity a learner with no bias towards
any particular minimiser.

q is drawn from the learner key of the set (``fit``'s first argument): a
standard Gaussian g in R^d with its span(X) component removed, q = (I - Q Q^T) g
where X^T = Q R.  Since the key does not depend on delta, learners with
different delta on the same seed share q (common random numbers), so a
delta sweep shows the effect of delta alone.  When n >= d the complement is
{0}: w_delta = w_hat for every delta (the unique minimiser).

With the Gram sampler (``distill(sampler="gram")``, docs/design.md fact 13)
the same learner runs from (G, X w*) alone: ``students.gram.gram_w_delta``
draws, from the same learner key, only the component of q / ||q|| along
w* - P_X w* (same law, not the same draw as here).
"""

from __future__ import annotations

from typing import ClassVar, final

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..status import Status
from ..sequencing import after
from ..teachers import TargetSpec, cross_entropy
from ..traced import traced_field
from ..validation import JaxDistillError, check_choice, check_real
from .base import AbstractLearner, LearnerOutput, needs_soft_targets
from .closed_form import ReducedData, reduce_data, reduced_target
from .flow import FlowConfig, gradient_flow

BASES = ("closed-form", "flow")


def orthogonal_gaussian(key: PRNGKeyArray, X: Float[Array, "n d"], red: ReducedData | None = None) -> Float[Array, " d"]:
    """q = (I - Q Q^T) g, g ~ N(0, I_d): a Gaussian in the complement of span(X).

    ``red``: the set's ``reduce_data(X)`` when already computed (saves a QR).
    Returns the zero vector when span(X) = R^d (n >= d, full rank).
    """
    n, d = X.shape
    red = reduce_data(X) if red is None else red
    g = jax.random.normal(key, (d,), dtype=X.dtype)
    if n >= d:
        return jnp.zeros_like(g)
    q = g - red.Q @ (red.Q.T @ g)
    # a second projection removes the rounding left by the first (twice is enough)
    return q - red.Q @ (red.Q.T @ q)


def w_delta_from(w_hat: Float[Array, " d"], q: Float[Array, " d"], delta) -> Float[Array, "... d"]:
    """w_hat + delta ||w_hat|| / ||q|| q for scalar or batched delta ([K] -> [K, d])."""
    delta = jnp.asarray(delta, w_hat.dtype)
    qn = jnp.linalg.norm(q)
    scale = jnp.where(qn > 0, jnp.linalg.norm(w_hat) / jnp.where(qn > 0, qn, 1.0), 0.0)
    return w_hat + (delta[..., None] * scale) * q


def w_delta(key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"], delta) -> Float[Array, "... d"]:
    """The reduced-bias learner of section 5.2 for one transfer set.

    Args:
        key: the set's learner key (draws q).
        X: transfer set [n, d]; u: teacher logits [n] (soft targets).
        delta: scalar, or an array [K] of deltas sharing the same q.

    Returns:
        w_delta, [d] (or [K, d] for an array of deltas).
    """
    red = reduce_data(X)
    w_hat = red.Q @ reduced_target(red, u)
    return w_delta_from(w_hat, orthogonal_gaussian(key, X, red), delta)


@final
class WDeltaLearner(AbstractLearner):
    """Reduced-bias distillation learner w_delta (section 5.2).

    Attributes:
        delta: the strength of the added orthogonal component (any real;
            0 reproduces the gradient-flow solution).
        base: how w_hat is computed: "closed-form" (Thm 1, eq. 6; default,
            exactly the flow's limit and much cheaper) or "flow" (integrate
            the gradient flow of eq. 3 with ``flow``).
        flow: ``FlowConfig`` used when base == "flow" (default
            ``FlowConfig()``); refused with base "closed-form".

    Soft targets only (``check_targets``): w_hat is the distillation solution.

    Example:
        >>> res = jaxdistill.distill(0, task, n=100, num_sets=500, learner=WDeltaLearner(delta=10.0))
    """

    delta: float = traced_field(default=0.0)  # a traced argument of the compiled run (jaxdistill.traced)
    base: str = "closed-form"
    flow: FlowConfig | None = None
    name: ClassVar[str] = "w-delta"

    def __post_init__(self):
        check_real("delta", self.delta)
        check_choice("base", self.base, BASES)
        if self.flow is not None:
            if self.base != "flow":
                raise JaxDistillError(f"flow= applies only to base='flow'; got base={self.base!r}")
            if not isinstance(self.flow, FlowConfig):
                raise JaxDistillError(f"flow must be a FlowConfig, got {type(self.flow).__name__}")
        elif self.base == "flow":
            self.flow = FlowConfig()

    def check_targets(self, targets: TargetSpec) -> None:
        needs_soft_targets(self, targets, "w_hat is the distillation solution of eq. 6")

    def fit(self, key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"]) -> LearnerOutput:
        if self.base == "flow":
            res = gradient_flow(X, u, self.flow)
            w_hat, status, steps = res.w, res.status, res.num_steps
            # the flow's factorisation and q's QR are independent LAPACK calls: q's QR waits
            # for w_hat, so that they never run concurrently (docs/design.md fact 11)
            q = orthogonal_gaussian(key, after(X, w_hat))
        else:
            red = reduce_data(X)
            w_hat = red.Q @ reduced_target(red, u)
            ok = red.rank_ok & jnp.all(jnp.isfinite(w_hat))
            status = jnp.where(ok, Status.CONVERGED, Status.RANK_DEFICIENT).astype(jnp.int32)
            steps = jnp.asarray(0, jnp.int32)
            q = orthogonal_gaussian(key, X, red)  # one QR for w_hat and q
        w = w_delta_from(w_hat, q, self.delta)
        off = jnp.linalg.norm(w - w_hat) / jnp.maximum(jnp.linalg.norm(w_hat), jnp.finfo(w.dtype).tiny)
        return LearnerOutput(w=w, status=status, num_steps=steps, loss=cross_entropy(X @ w, u),
                             extras={"rel_offset": off})

