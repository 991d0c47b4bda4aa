"""The hard-target learner (section 5.3, Fig. 5).

Logistic regression on hard labels y_i = 1{w*.x_i >= 0}, trained by
gradient descent / gradient flow from w = 0 on the cross-entropy of eq. 1
with y_i in {0, 1}.  On linearly separable data (always the case here: the
teacher separates its own labels through the origin) the loss has no
finite minimiser; ||w(t)|| grows like log t and the *direction* converges
to the L2 max-margin separator through the origin (Soudry et al., 2018):

    w(t) = w_mm log t + rho(t),  rho bounded,
    w_mm = argmin ||w||^2  s.t.  s_i w.x_i >= 1,  s_i = 2 y_i - 1.

Since a linear classifier's risk depends only on its direction, w_mm *is*
the long-run hard-target learner.  It is computed directly from the dual

    max_a  1^T a - 1/2 a^T K a,  a >= 0,   K_ij = s_i s_j x_i.x_j,
    w_mm = sum_i a_i s_i x_i,

by exact coordinate ascent (cyclic, batched under vmap) followed by an
active-set polish (solve K_SS a_S = 1 on the support S) and a KKT check
that sets the per-set status.  ``method="flow"`` / ``"gd"`` give the finite-
time learners themselves (status "finite_horizon").

The learner binarises whatever logits it gets (u >= 0 -> class 1), so it can
be run with soft or hard ``TargetSpec``.
"""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from ..status import Status
from ..teachers import TargetSpec, cross_entropy
from ..validation import JaxDistillError, check_choice, check_int, check_real
from .base import AbstractBinaryLearner, LearnerOutput
from .discrete import GDConfig, gradient_descent
from .flow import FlowConfig, gradient_flow

METHODS = ("max-margin", "flow", "gd")


def hard_logits(u: Float[Array, " n"]) -> Float[Array, " n"]:
    """+inf where u >= 0, -inf elsewhere (the teacher's hard labels as logits)."""
    return jnp.where(u >= 0, jnp.inf, -jnp.inf)


class MaxMarginResult(eqx.Module):
    """Max-margin separator through the origin for one set.

    Attributes:
        w: w_mm [d] (margin normalisation s_i w.x_i >= 1, equality on the support).
        alpha: dual variables [n] (>= 0).
        status: ``Status.CONVERGED`` when the KKT conditions hold to ``tol``,
            else ``Status.NOT_CONVERGED`` (``Status.NON_FINITE`` if w is not finite).
        kkt: max KKT violation, relative (max of -min margin slack, |a_i| on
            non-tight points, dual-feasibility).
        margin: geometric margin 1 / ||w_mm||.
    """

    w: Float[Array, " d"]
    alpha: Float[Array, " n"]
    status: Int[Array, ""]
    kkt: Float[Array, ""]
    margin: Float[Array, ""]


def max_margin(
    X: Float[Array, "n d"], s: Float[Array, " n"], *, sweeps: int = 200, polish: int = 3, tol: float = 1e-8
) -> MaxMarginResult:
    """Hard-margin SVM through the origin, dual solved exactly (see module doc).

    Args:
        X: inputs [n, d]; s: labels in {-1, +1} [n] (separable through 0).
        sweeps: cyclic coordinate-ascent sweeps before the polish.
        polish: active-set refinements (each: solve on the support, clip,
            re-add violated points).
        tol: KKT tolerance for status ``Status.CONVERGED`` (relative to 1).

    Returns:
        ``MaxMarginResult``.
    """
    n = X.shape[0]
    Z = s[:, None] * X
    K = Z @ Z.T
    diag = jnp.maximum(jnp.diagonal(K), jnp.finfo(X.dtype).tiny)

    def coord(i, a):
        g = 1.0 - K[i] @ a  # d/da_i of the dual objective
        return a.at[i].set(jnp.maximum(0.0, a[i] + g / diag[i]))

    def sweep(_, a):
        return jax.lax.fori_loop(0, n, coord, a)

    a = jax.lax.fori_loop(0, sweeps, sweep, jnp.zeros(n, X.dtype))

    def refine(_, a):
        grad = 1.0 - K @ a  # = 1 - margins
        S = (a > 0) | (grad > 0)  # support plus violated points
        Ks = jnp.where(S[:, None] & S[None, :], K, jnp.eye(n, dtype=X.dtype))
        a_s = jnp.linalg.solve(Ks, jnp.where(S, 1.0, 0.0))
        cand = jnp.where(S, a_s, 0.0)
        ok = jnp.all(cand >= 0) & jnp.all(jnp.isfinite(cand))
        # keep the exact active-set solution only when it is dual feasible;
        # otherwise a few more coordinate sweeps
        return jnp.where(ok, cand, jax.lax.fori_loop(0, 10, sweep, a))

    a = jax.lax.fori_loop(0, polish, refine, a)
    w = Z.T @ a
    margins = Z @ w
    viol_primal = jnp.max(jnp.maximum(0.0, 1.0 - margins))
    viol_comp = jnp.max(jnp.where(a > 0, jnp.abs(margins - 1.0), 0.0))
    kkt = jnp.maximum(viol_primal, viol_comp)
    finite = jnp.all(jnp.isfinite(w))
    status = jnp.where(~finite, Status.NON_FINITE,
                       jnp.where(kkt <= tol, Status.CONVERGED, Status.NOT_CONVERGED)).astype(jnp.int32)
    return MaxMarginResult(w=w, alpha=a, status=status, kkt=kkt, margin=1.0 / jnp.linalg.norm(w))


@final
class HardTargetLearner(AbstractBinaryLearner):
    """Logistic regression on the teacher's hard labels (section 5.3).

    Attributes:
        method: "max-margin" (default: the limit direction of gradient
            descent/flow from zero, computed directly by the dual QP),
            "flow" (gradient flow of eq. 3 on hard labels up to
            ``flow.t_max``) or "gd" (``gd.steps`` optax steps).
        flow: ``FlowConfig`` for method "flow" (t_max is the horizon;
            default t_max 1e6).  Refused with the other methods.
        gd: ``GDConfig`` for method "gd" (default learning_rate 1,
            10,000 steps).  Refused with the other methods.
        sweeps, tol: settings of the max-margin dual solver (default 200,
            1e-8); method "max-margin" only (refused with the others, None then).

    Any ``TargetSpec`` is accepted: the learner binarises the logits it gets.

    The risk of a linear classifier depends only on its direction, so
    "max-margin" is the t -> infinity hard-target learner.
    """

    method: str = "max-margin"
    flow: FlowConfig | None = None
    gd: GDConfig | None = None
    sweeps: int | None = None
    tol: float | None = None
    name: ClassVar[str] = "hard-target"

    def __post_init__(self):
        check_choice("method", self.method, METHODS)
        if self.method == "max-margin":
            self.sweeps = 200 if self.sweeps is None else check_int("sweeps", self.sweeps, minimum=1)
            self.tol = 1e-8 if self.tol is None else check_real("tol", self.tol, gt=0.0)
        else:
            given = [k for k, v in (("sweeps", self.sweeps), ("tol", self.tol)) if v is not None]
            if given:
                raise JaxDistillError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to "
                                      f"method='max-margin' (the dual solver); got method={self.method!r}")
        if self.flow is not None and self.method != "flow":
            raise JaxDistillError(f"flow= applies only to method='flow'; got method={self.method!r}")
        if self.gd is not None and self.method != "gd":
            raise JaxDistillError(f"gd= applies only to method='gd'; got method={self.method!r}")
        if self.flow is not None and not isinstance(self.flow, FlowConfig):
            raise JaxDistillError(f"flow must be a FlowConfig, got {type(self.flow).__name__}")
        if self.gd is not None and not isinstance(self.gd, GDConfig):
            raise JaxDistillError(f"gd must be a GDConfig, got {type(self.gd).__name__}")
        if self.method == "flow" and self.flow is None:
            self.flow = FlowConfig(t_max=1e6)
        if self.method == "gd" and self.gd is None:
            self.gd = GDConfig(learning_rate=1.0, steps=10_000)

    def check_targets(self, targets: TargetSpec) -> None:
        return None  # binarises soft and hard targets alike

    def fit_logits(self, key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"]) -> LearnerOutput:
        uh = hard_logits(u)
        if self.method == "max-margin":
            s = jnp.where(u >= 0, 1.0, -1.0).astype(X.dtype)
            res = max_margin(X, s, sweeps=self.sweeps, tol=self.tol)
            return LearnerOutput(w=res.w, status=res.status, num_steps=jnp.asarray(self.sweeps, jnp.int32),
                                 loss=cross_entropy(X @ res.w, uh), extras={"kkt": res.kkt, "margin": res.margin})
        if self.method == "flow":
            res = gradient_flow(X, uh, self.flow)
            # hard labels have no steady state: the flow's Newton-step diagnostic
            # is undefined (sigma' underflows), so a finite w at the horizon is a success
            status = jnp.where((res.status == Status.NON_FINITE) & jnp.all(jnp.isfinite(res.w)), Status.FINITE_HORIZON,
                               res.status)
            return LearnerOutput(w=res.w, status=status.astype(jnp.int32), num_steps=res.num_steps, loss=res.loss,
                                 extras={"t_final": res.t_final})
        res = gradient_descent(X, uh, self.gd)
        return LearnerOutput(w=res.w, status=res.status, num_steps=res.num_steps, loss=res.loss)
