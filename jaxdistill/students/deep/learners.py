"""Deep linear student learners: ``DeepLearner`` (gradient flow to its
steady state, Thm 2) and ``DeepGDLearner`` (an optax optimiser on all the
factors), and ``deep_learner``, the one constructor for both.

Initialisation: w(0) = init_scale * v with v uniform on the sphere, factored
exactly as balanced rank-one matrices (``inits.balanced_init``, eq. 13),
condition 12 met by a sign flip.  The init scale is either given, or derived
per set from epsilon: ``eq11_fraction`` times the largest ||w(0)|| allowed by
eq. 11, which simplifies to ||w_hat|| (1 + ||w_hat||^2 / eps^2)^{-N/2}.

Guarantee (eq. 76): limsup ||w(t) - w_hat|| <= ||w_hat|| sqrt(rho / (1 - rho)),
rho = (||w(0)|| / ||w_hat||)^{2/N}, when ||w(0)|| < ||w_hat||; 0 when n >= d
(eq. 14); +inf when ||w(0)|| >= ||w_hat|| (the theorem gives no bound).
"""

from __future__ import annotations

from typing import ClassVar, final

import equinox as eqx
import jax.numpy as jnp

from ...defaults import DEFAULTS
from ..._precision import check_dtype
from ...teachers import TargetSpec, cross_entropy
from ...validation import JaxDistillError, check_choice, check_int, check_real
from ..base import AbstractBinaryLearner, LearnerOutput
from ..closed_form import reduce_data, reduced_target
from ..discrete import GDConfig
from ..flow import FlowConfig
from .algebra import DEFAULT_EPSILON, balancedness_defect, eq11_max_init_scale, eq11_sup_over_sets, eq76_bound
from .inits import INITS, balanced_init, gaussian_init
from .integrators import INTEGRATORS, deep_flow, deep_gradient_descent, default_flow_config

DEEP_METHODS = ("flow", "gd")


DEFAULT_EQ11_FRACTION = 0.5  # of the eq. 11 limit, when the init scale is derived from epsilon


def _check_common(depth, width, init_scale, epsilon, eq11_fraction, init):
    check_int("depth", depth, minimum=1)
    if width is not None:
        check_int("width", width, minimum=1)
    if init_scale is not None:
        check_real("init_scale", init_scale, gt=0.0)
    if epsilon is not None:
        check_real("epsilon", epsilon, gt=0.0)
    check_real("eq11_fraction", eq11_fraction, gt=0.0, lt=1.0)
    if init_scale is not None and eq11_fraction != DEFAULT_EQ11_FRACTION:
        raise JaxDistillError(f"eq11_fraction applies only when init_scale is None (it sets the init scale as a "
                              f"fraction of the eq. 11 limit); got init_scale={init_scale:g} and "
                              f"eq11_fraction={eq11_fraction:g}")
    check_choice("init", init, INITS)
    if init_scale is not None and epsilon is not None:
        sup = eq11_sup_over_sets(epsilon, depth)
        if not init_scale < sup:
            raise JaxDistillError(
                f"init_scale must be < {sup:.6g} to satisfy eq. 11 with epsilon={epsilon:g} and depth N={depth} "
                f"(the largest ||w(0)|| eq. 11 allows for any ||w_hat||); got {init_scale:g}. "
                "Omit init_scale to derive it from epsilon per set, or omit epsilon to drop the guarantee.")


def _init_for_set(key, X, u, depth, width, init_scale, epsilon, eq11_fraction, init):
    red = reduce_data(X)
    b_hat = reduced_target(red, u)
    w_hat = red.Q @ b_hat
    soft = jnp.all(jnp.isfinite(u))
    a = jnp.where(soft, jnp.linalg.norm(w_hat), 1.0)  # hard labels: no w_hat; scale by 1
    eps = DEFAULT_EPSILON if epsilon is None else epsilon
    if init_scale is None:
        s = eq11_fraction * eq11_max_init_scale(eps, a, depth)
    else:
        s = jnp.asarray(init_scale, X.dtype)
    maker = balanced_init if init == "balanced" else gaussian_init
    ini = maker(key, X, u, depth=depth, width=width, init_scale=s)
    cover = red.R.shape[0] == X.shape[1]  # n >= d: span(X) = R^d
    bound = eq76_bound(ini.init_norm, a, depth, full_rank_cover=cover)
    eq11_ok = ini.init_norm < eq11_max_init_scale(eps, a, depth)
    return ini, red, b_hat, w_hat, soft, bound, eq11_ok


def _extras(ini, w, w_hat, soft, bound, eq11_ok, defect, t_final, newton_rel, orth):
    dist = jnp.where(soft, jnp.linalg.norm(w - w_hat), jnp.nan)
    return {
        "dist_w_hat": dist,
        "eq76_bound": jnp.where(soft, bound, jnp.nan),
        "balancedness_defect": defect,
        "init_balancedness_defect": ini.balancedness_defect,
        "init_norm": ini.init_norm,
        "orth_norm": orth,
        "eq11_satisfied": eq11_ok.astype(w.dtype),
        "cond12_satisfied": ini.cond12.astype(w.dtype),
        "t_final": t_final,
        "newton_rel": newton_rel,
    }


@final
class DeepLearner(AbstractBinaryLearner):
    """Deep linear student (Thm 2) trained by gradient flow to its steady state.

    Attributes:
        depth: N >= 1 factors (N = 1 is a linear student started at w(0) != 0).
        width: hidden width H >= 1 of the factors, for integrator="full"
            (None: ``DEFAULTS.deep_width``, 64).  Only the full integrator
            forms the factors; from the balanced initialisation the learned
            w does not depend on H (Thm 2), so the reduced and induced
            integrators refuse a width (``JaxDistillError`` naming it).
        init_scale: ||w(0)||; None derives it per set from epsilon by eq. 11
            (``eq11_fraction`` of the largest allowed value).
        epsilon: the Thm 2 accuracy; with init_scale also given, an init
            scale that violates eq. 11 for every possible set is an error and
            ``extras["eq11_satisfied"]`` reports each set.  None: 1e-2 when
            init_scale is None too.
        integrator: "reduced" (default), "induced" or "full" (``deep_flow``).
        flow: ``FlowConfig`` (solver, tolerances, stopping).  None (the
            default) becomes ``default_flow_config(integrator)``: the linear
            default for "reduced" (its limit is read off the eq. 66
            invariant, so it is path independent), Kvaerno5 with rtol 1e-8,
            atol 1e-14 for "induced" and "full" (their limit depends on the
            path).  Either way the student is within 1e-8 relative of the
            exact limit (measured 1e-9 at N = 2, 3; ``integrators`` docstring).
            In float32 (``for_dtype``) the default becomes
            ``default_flow_config(integrator, rtol=1e-4, atol=1e-6)`` with
            newton_tol 1e-5 (float32 cannot resolve tighter tolerances).
        eq11_fraction: fraction of the eq. 11 limit used when init_scale is None.
        init: "balanced" (exact eq. 13) or "gaussian" (full integrator only).

    ``fit`` extras: dist_w_hat, eq76_bound, balancedness_defect (final, full
    flow), init_balancedness_defect, init_norm, orth_norm, eq11_satisfied,
    cond12_satisfied, t_final, newton_rel.  Soft or hard targets.
    """

    depth: int = 2
    width: int | None = None
    init_scale: float | None = None
    epsilon: float | None = None
    integrator: str = "reduced"
    flow: FlowConfig | None = None
    eq11_fraction: float = DEFAULT_EQ11_FRACTION
    init: str = "balanced"
    name: ClassVar[str] = "deep"
    randomised: ClassVar[bool] = True

    def __post_init__(self):
        if self.flow is None:
            self.flow = default_flow_config(self.integrator) if self.integrator in INTEGRATORS else FlowConfig()

    def for_dtype(self, dtype: str) -> "DeepLearner":
        """float32: the integrator's default flow (rtol 1e-8, atol 1e-14 for induced / full, below float32
        resolution) is replaced by ``default_flow_config(integrator, rtol=1e-4, atol=1e-6)``; then newton_tol is
        raised as for every learner (``AbstractLearner.for_dtype``).  A user's own FlowConfig is kept."""
        if (check_dtype(dtype) == "float32" and self.integrator != "reduced"
                and self.flow == default_flow_config(self.integrator)):
            loose = default_flow_config(self.integrator, rtol=1e-4, atol=1e-6)
            return super(DeepLearner, eqx.tree_at(lambda m: m.flow, self, loose)).for_dtype(dtype)
        return super().for_dtype(dtype)

    def __check_init__(self):
        _check_common(self.depth, self.width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)
        check_choice("integrator", self.integrator, INTEGRATORS)
        if not isinstance(self.flow, FlowConfig):
            raise JaxDistillError(f"flow must be a FlowConfig, got {type(self.flow).__name__}")
        if self.init != "balanced" and self.integrator != "full":
            raise JaxDistillError(
                f"init={self.init!r} is not balanced (eq. 13); the {self.integrator} integrator assumes balancedness: "
                "use integrator='full'")
        if self.width is not None and self.integrator != "full":
            raise JaxDistillError(f"width applies to DeepLearner only with integrator='full', which trains the factors "
                                  f"themselves; the {self.integrator} integrator never forms them (from the balanced "
                                  f"initialisation the learned w does not depend on the width, Thm 2); got "
                                  f"width={self.width}")
        if self.flow.coordinates == "plain" and self.integrator != "full":
            raise JaxDistillError(f"FlowConfig(coordinates='plain') applies to deep students only with "
                                  f"integrator='full' (the factor W_1 in d dimensions); the {self.integrator} "
                                  "integrator has its own coordinates")

    @property
    def hidden_width(self) -> int:
        """H of the factors: ``width``, or ``DEFAULTS.deep_width`` when None
        (the reduced and induced integrators draw the balanced initialisation
        at this width; its w(0) does not depend on it)."""
        return DEFAULTS.deep_width if self.width is None else self.width

    def check_targets(self, targets: TargetSpec) -> None:
        return None

    def fit_logits(self, key, X, u) -> LearnerOutput:
        ini, red, b_hat, w_hat, soft, bound, eq11_ok = _init_for_set(
            key, X, u, self.depth, self.hidden_width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)
        res = deep_flow(X, u, ini, integrator=self.integrator, config=self.flow, red=red, b_hat=b_hat)
        return LearnerOutput(
            w=res.w, status=res.status, num_steps=res.num_steps, loss=res.loss,
            extras=_extras(ini, res.w, w_hat, soft, bound, eq11_ok, res.balancedness_defect, res.t_final,
                           res.newton_rel, res.orth_norm))


# The deep students' gradient-descent settings (a deep factorisation needs a smaller step than a linear student)
DEEP_GD_SETTINGS = {"learning_rate": 0.5, "steps": 20_000}


def default_gd_config(**overrides) -> GDConfig:
    """The deep students' default ``GDConfig`` (``DEEP_GD_SETTINGS``:
    learning_rate 0.5, 20,000 steps) with ``overrides`` (any ``GDConfig``
    keyword) applied on top, as ``default_flow_config`` does for flows:
    ``default_gd_config(steps=100)`` keeps learning_rate 0.5; an optax
    ``optimizer`` object carries its own step size, so the default
    learning_rate is dropped then."""
    base = dict(DEEP_GD_SETTINGS)
    if not isinstance(overrides.get("optimizer", "sgd"), str):
        base.pop("learning_rate")
    return GDConfig(**{**base, **overrides})


@final
class DeepGDLearner(AbstractBinaryLearner):
    """Deep linear student trained by an optax optimiser on all factors
    (finite horizon: status "finite_horizon").

    Attributes: depth, width, init_scale, epsilon, eq11_fraction, init as in
    ``DeepLearner``; gd: ``GDConfig`` (default learning_rate 0.5, 20,000 steps).
    ``fit`` extras as ``DeepLearner``'s (t_final and newton_rel are NaN).
    """

    depth: int = 2
    width: int = DEFAULTS.deep_width
    init_scale: float | None = None
    epsilon: float | None = None
    gd: GDConfig = default_gd_config()
    eq11_fraction: float = DEFAULT_EQ11_FRACTION
    init: str = "balanced"
    name: ClassVar[str] = "deep-gd"
    randomised: ClassVar[bool] = True

    def __check_init__(self):
        _check_common(self.depth, self.width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)
        if not isinstance(self.gd, GDConfig):
            raise JaxDistillError(f"gd must be a GDConfig, got {type(self.gd).__name__}")

    def check_targets(self, targets: TargetSpec) -> None:
        return None

    def fit_logits(self, key, X, u) -> LearnerOutput:
        ini, red, b_hat, w_hat, soft, bound, eq11_ok = _init_for_set(
            key, X, u, self.depth, self.width, self.init_scale, self.epsilon, self.eq11_fraction, self.init)
        w, Ws, status = deep_gradient_descent(X, u, ini, self.gd)
        Q = red.Q
        orth = jnp.linalg.norm(w - Q @ (Q.T @ w))
        nan = jnp.asarray(jnp.nan, X.dtype)
        return LearnerOutput(
            w=w, status=status, num_steps=jnp.asarray(self.gd.steps, jnp.int32), loss=cross_entropy(X @ w, u),
            extras=_extras(ini, w, w_hat, soft, bound, eq11_ok, balancedness_defect(Ws), nan, nan, orth))


def deep_learner(
    *,
    depth: int,
    width: int | None = None,
    init_scale: float | None = None,
    epsilon: float | None = None,
    init: str = "balanced",
    eq11_fraction: float = DEFAULT_EQ11_FRACTION,
    method: str = "flow",
    integrator: str | None = None,
    flow: FlowConfig | None = None,
    gd: GDConfig | None = None,
) -> DeepLearner | DeepGDLearner:
    """The deep linear student trained by ``method``.

    Args:
        depth, width, init_scale, epsilon, init, eq11_fraction: as in
            ``DeepLearner`` (shared by both methods; width None is
            ``DEFAULTS.deep_width`` for method "gd").
        method: "flow" -> ``DeepLearner`` (gradient flow to the steady
            state); "gd" -> ``DeepGDLearner`` (optax on all the factors).
        integrator: "reduced" (default), "induced" or "full"; method "flow" only.
        flow: ``FlowConfig``; method "flow" only (default
            ``default_flow_config(integrator)``, accurate to 1e-8 relative).
        gd: ``GDConfig``; method "gd" only (default learning_rate 0.5,
            20,000 steps).

    Raises:
        JaxDistillError: an argument given for the method it does not apply
            to (integrator / flow with "gd", gd with "flow"), naming it.
    """
    check_choice("method", method, DEEP_METHODS)
    common = dict(depth=depth, width=width, init_scale=init_scale, epsilon=epsilon, init=init,
                  eq11_fraction=eq11_fraction)
    if method == "flow":
        if gd is not None:
            raise JaxDistillError("gd applies only to method='gd' (gradient descent on the factors); got method='flow'")
        kw = {}
        if integrator is not None:
            kw["integrator"] = integrator
        if flow is not None:
            kw["flow"] = flow
        return DeepLearner(**common, **kw)
    given = [k for k, v in (("integrator", integrator), ("flow", flow)) if v is not None]
    if given:
        raise JaxDistillError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to method='flow' "
                              "(the gradient flow); got method='gd'")
    if width is None:
        common["width"] = DEFAULTS.deep_width
    return DeepGDLearner(**common, **({} if gd is None else {"gd": gd}))


__all__ = ["DEEP_METHODS", "DEEP_GD_SETTINGS", "DeepLearner", "DeepGDLearner", "default_gd_config", "deep_learner"]
