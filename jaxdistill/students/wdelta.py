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
the same learner runs from (G, X w*) alone: ``WDeltaLearner.fit_gram``
draws, from the same learner key, only the component of q / ||q|| along
w* - P_X w* (same law, not the same draw as here).
"""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..status import Status
from ..sequencing import after
from ..teachers import TargetSpec, cross_entropy
from ..traced import traced_field
from ..validation import JaxDistillError, check_real
from ..design import GramDesign
from .base import AbstractBinaryLearner, ClosedFormLearner, FlowLearner, LearnerOutput, needs_soft_targets
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


def complement_direction(key: PRNGKeyArray, k: int, dtype) -> Float[Array, " 2"]:
    """(s, sqrt(1 - s^2)) for a direction q / ||q|| uniform on the unit sphere
    of a k-dimensional space: s its component along a fixed unit vector e,
    sqrt(1 - s^2) the norm of the rest (its component along the rest's own
    unit direction).  s = g_1 / sqrt(g_1^2 + chi^2_{k-1})
    with g_1 ~ N(0, 1) (a standard Gaussian q in that space has g_1 = q.e and
    chi^2_{k-1} = ||q - (q.e) e||^2); k = 1: s = +-1 with probability 1/2
    each; k <= 0 (no complement): (0, 0).  ``k`` is a Python int."""
    if k <= 0:
        return jnp.zeros((2,), dtype)
    k_g, k_chi = jax.random.split(key)
    g1 = jax.random.normal(k_g, (), dtype)
    if k == 1:
        return jnp.stack([jnp.where(g1 >= 0, 1.0, -1.0).astype(dtype), jnp.zeros((), dtype)])
    chi2 = 2.0 * jax.random.gamma(k_chi, (k - 1) / 2.0, (), dtype)
    v = jnp.stack([g1, jnp.sqrt(chi2)])
    return v / jnp.linalg.norm(v)


@final
class WDeltaLearner(AbstractBinaryLearner):
    """Reduced-bias distillation learner w_delta (section 5.2).

    Attributes:
        delta: the strength of the added orthogonal component (any real;
            0 reproduces the gradient-flow solution).
        base: the learner of w_hat: ``ClosedFormLearner()`` (Thm 1, eq. 6;
            default, exactly the flow's limit and much cheaper) or
            ``FlowLearner(FlowConfig(...))`` (the gradient flow of eq. 3).

    Soft targets only (``check_targets``): w_hat is the distillation solution.

    Example:
        >>> res = jaxdistill.distill(0, task, n=100, num_sets=500, learner=WDeltaLearner(delta=10.0))
        >>> WDeltaLearner(10.0, base=FlowLearner(FlowConfig(newton_tol=1e-10)))
    """

    delta: float = traced_field(default=0.0)  # a traced argument of the compiled run (jaxdistill.traced)
    base: ClosedFormLearner | FlowLearner = ClosedFormLearner()
    name: ClassVar[str] = "w-delta"
    randomised: ClassVar[bool] = True

    def __post_init__(self):
        check_real("delta", self.delta)
        if not isinstance(self.base, (ClosedFormLearner, FlowLearner)):
            raise JaxDistillError(f"base must be the learner of w_hat, ClosedFormLearner() or FlowLearner(FlowConfig(...)); "
                                  f"got {self.base!r} (the strings {BASES} are the command line's --method)")

    @property
    def flow(self) -> FlowConfig | None:
        """The ``FlowConfig`` of a flow base (None for the closed form)."""
        return self.base.flow if isinstance(self.base, FlowLearner) else None

    def for_dtype(self, dtype: str) -> "WDeltaLearner":
        base = self.base.for_dtype(dtype)
        return self if base is self.base else eqx.tree_at(lambda m: m.base, self, base)

    def config(self) -> dict:
        """``{"method": "w-delta", "delta": ..., "base": "closed-form" | "flow", "flow": {...} | None}``."""
        cfg = super().config()  # method, delta (the fields' own forms)
        cfg.update(base=self.base.name, flow=None if self.flow is None else self.flow.config())
        return cfg

    def check_targets(self, targets: TargetSpec) -> None:
        needs_soft_targets(self, targets, "w_hat is the distillation solution of eq. 6")

    def fit_logits(self, key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"]) -> LearnerOutput:
        if isinstance(self.base, FlowLearner):
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

    def fit_gram(self, key: PRNGKeyArray, design: GramDesign, u: Float[Array, " n"]) -> LearnerOutput:
        """w_delta = w_hat + delta ||w_hat|| q / ||q|| (section 5.2) in Gram
        space, exact in law for inputs in R^d (n <= d, full rank).

        w_hat = Q c_hat is the closed form of Thm 1 (eq. 6; base
        "closed-form") or the flow of eq. 3 (base "flow"), fitted on the
        Gram design.  q / ||q|| is uniform on the unit sphere of the
        (d - n)-dimensional complement of span X and independent of X and
        w*; ``complement_direction`` draws, from ``key`` (the set's learner
        key), its component s along a unit vector e_perp of the complement
        fixed beforehand and the norm of the rest.

        Returns:
            ``LearnerOutput`` whose ``w`` holds n + 2 coordinates: c_hat
            (span X, basis X^T L^{-T}), then delta ||c_hat|| s along e_perp
            and delta ||c_hat|| sqrt(1 - s^2) along e_rest, the unit
            direction of q - (q.e_perp) e_perp; ``gram.gram_student_stats``
            takes e_perp as the direction of w* - P_X w* (any fixed e_perp
            gives the same law).  Status, steps and loss are w_hat's
            (X w_delta = X w_hat, Lemma B.3); extras {"rel_offset":
            ||w_delta - w_hat|| / ||w_hat||} (= |delta|; 0 where w_hat = 0
            or n >= d), as ``fit_logits``.
        """
        n = design.n
        base = self.base.fit_gram(key, design, u)
        c_hat = base.w
        norm = jnp.linalg.norm(c_hat)
        off = jnp.asarray(self.delta, c_hat.dtype) * norm * complement_direction(key, design.d - n, c_hat.dtype)
        rel_offset = jnp.linalg.norm(off) / jnp.maximum(norm, jnp.finfo(c_hat.dtype).tiny)
        return LearnerOutput(w=jnp.concatenate([c_hat, off]), status=base.status, num_steps=base.num_steps,
                             loss=base.loss, extras={"rel_offset": rel_offset})

