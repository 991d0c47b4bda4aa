"""Finite-width students: a two-layer bias-free ReLU network in the NTK
parameterisation, trained by an optax optimiser (docs/design.md fact 9).

The network with M hidden units and K outputs is

    f(x) = M^{-1/2} sum_j a_j relu(w_j . x),    a_j in R^K, w_j in R^d,

with w_j ~ N(0, I_d) and a_j ~ N(0, I_K) at initialisation.  Its empirical
neural tangent kernel (both layers trained) is
Theta(x, x')_{kk'} = (1/M) sum_j [relu(w_j.x) relu(w_j.x') delta_kk'
+ a_jk a_jk' 1{w_j.x > 0} 1{w_j.x' > 0} x.x'], whose expectation is
(E[relu relu] = arccos / 2, E[1 1] = (pi - t) / (2 pi))

    ntk_kernel(x, x') delta_kk' = ((1/2) arccos(x, x') + x.x' (pi - t) / (2 pi)) delta_kk',

so as M -> infinity the network's NTK is exactly ``kernels.ntk_kernel``.

Start from f = 0 (as the linear and kernel students): the antisymmetric
("doubling") initialisation takes M/2 pairs of units sharing w_j with output
weights a_j and -a_j.  Each pair cancels, so f = 0 at init, while the
empirical NTK is that of M units (a pair contributes 2 relu relu and
2 a a^T 1 1 x.x') and keeps the same expectation.

Training: full-batch optimisation of the mean cross-entropy to the targets
P = softmax(V) (soft, hard or mixed log targets as in
``multiclass.learners``).  The gradient in the parameters theta is
J^T (softmax(Z) - P) / n with J the Jacobian of the logits Z [n, K] on the
transfer set, so gradient descent with step eta is, to first order in eta,

    Z_{s+1} = Z_s - (eta / n) Theta_s (softmax(Z_s) - P),

the explicit Euler step of the kernel flow dZ/dt = -(1/n) Theta (softmax(Z) - P)
at time t = eta s.  As M -> infinity Theta_s stays at its initial value
(lazy training) and tends to ntk_kernel, so the network trained by plain
GD for S steps at learning rate eta approaches the ``ntk`` kernel student
trained by GD with the same (eta, S) (exactly, in the limit: the linearised
network IS the kernel student on Cholesky features) and, as eta -> 0 with
eta S = t fixed, the ``ntk`` kernel student trained by the flow to
``FlowConfig(t_end=t)`` (tests/test_mlp.py measures both distances).

Parameters are stored as ONE array per set, ``params [M, d + K]``: row j is
(w_j, a_j).  The runner's chunk files hold one array per output per set,
so ``LearnerOutput.W`` is this array and ``predict`` unpacks it.  There is
no exact limit of training (``limit`` is None; ``rel_dist_closed_form`` is
NaN).
"""

from __future__ import annotations

import math
from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from ..multiclass.learners import AbstractSoftmaxLearner, log_targets, softmax_residual
from ..multiclass.minimiser import LimitKind
from ..multiclass.targets import softmax_cross_entropy
from ..status import Status
from ..students.base import LearnerOutput
from ..students.discrete import GDConfig, optimise
from ..validation import JaxDistillError, check_int


def mlp_logits(params: Float[Array, "M dK"], X: Float[Array, "m d"]) -> Float[Array, "m K"]:
    """The network's logits M^{-1/2} relu(X W^T) A for ``params = [W | A]``
    [M, d + K] (W [M, d] the first-layer rows w_j, A [M, K] the output rows
    a_j); d is read off X.

    The sum over units is taken as (first half) + (second half): the two
    halves of the antisymmetric init give products that are exact negatives
    of each other, so the logits at init are exactly 0, not 0 to rounding."""
    M = params.shape[0]
    d = X.shape[-1]
    half = M // 2

    def part(P):
        return jax.nn.relu(X @ P[:, :d].T) @ P[:, d:]

    return (part(params[:half]) + part(params[half:])) / math.sqrt(M)


def mlp_init(key: PRNGKeyArray, width: int, d: int, K: int, dtype) -> Float[Array, "M dK"]:
    """Antisymmetric init [M, d + K]: M/2 pairs (w_j, a_j), (w_j, -a_j) with
    w_j ~ N(0, I_d), a_j ~ N(0, I_K); the network is exactly 0 at init and
    its NTK has the expectation ``ntk_kernel`` (module docstring)."""
    kw, ka = jax.random.split(key)
    half = width // 2
    W = jax.random.normal(kw, (half, d), dtype)
    A = jax.random.normal(ka, (half, K), dtype)
    return jnp.concatenate([jnp.concatenate([W, A], axis=1), jnp.concatenate([W, -A], axis=1)], axis=0)


def _check_width(width) -> int:
    width = check_int("width", width, minimum=2)
    if width % 2:
        raise JaxDistillError(f"width must be even (the network starts at f = 0 from M/2 pairs of units with "
                              f"output weights a and -a), got width={width}")
    return width


@final
class MLPLearner(AbstractSoftmaxLearner):
    """A two-layer bias-free ReLU network of ``width`` hidden units in the NTK
    parameterisation, trained from f = 0 (antisymmetric seeded init) by
    ``gd.steps`` full-batch optax updates on the cross-entropy (module
    docstring; docs/design.md fact 9).  Status ``FINITE_HORIZON``
    (``NON_FINITE`` if anything blew up).

    With plain GD at learning rate eta for S steps its logits follow the
    kernel flow dZ/dt = -(1/n) Theta (softmax(Z) - P) at t = eta S, Theta the
    empirical NTK, which tends to ``ntk_kernel`` as the width grows.

    Attributes:
        width: M, even, >= 2.
        gd: ``GDConfig`` (default plain SGD, learning rate 1, 10,000 steps).

    ``LearnerOutput.W`` holds the parameters [M, d + K] (rows (w_j, a_j));
    ``predict`` gives the network's logits; ``limit`` is None.
    """

    width: int = eqx.field(static=True)
    gd: GDConfig
    name: ClassVar[str] = "mlp"
    randomised: ClassVar[bool] = True

    def __init__(self, width: int, gd: GDConfig | None = None):
        self.width = _check_width(width)
        gd = GDConfig() if gd is None else gd
        if not isinstance(gd, GDConfig):
            raise JaxDistillError(f"gd must be a GDConfig, got {gd!r}")
        self.gd = gd

    def fit_inputs(self, key: PRNGKeyArray, X: Float[Array, "n d"], V: Float[Array, "n K"]) -> LearnerOutput:
        n, d = X.shape
        K = V.shape[-1]
        logp = log_targets(V)

        def grad(params):
            Z, pullback = jax.vjp(lambda p: mlp_logits(p, X), params)
            (g,) = pullback(softmax_residual(Z, logp) / n)  # J^T (softmax(Z) - P) / n
            return g

        params = optimise(grad, mlp_init(key, self.width, d, K, X.dtype), self.gd)
        loss = softmax_cross_entropy(mlp_logits(params, X), V)
        finite = jnp.all(jnp.isfinite(params)) & jnp.isfinite(loss)
        status = jnp.where(finite, Status.FINITE_HORIZON, Status.NON_FINITE).astype(jnp.int32)
        return LearnerOutput(w=params, status=status, num_steps=jnp.asarray(self.gd.steps, jnp.int32), loss=loss)

    def predict(self, W: Float[Array, "M dK"], X: Float[Array, "n d"] | None,
                X_new: Float[Array, "m d"]) -> Float[Array, "m K"]:
        """The network's logits on X_new (the transfer inputs X are not needed)."""
        return mlp_logits(W, X_new)

    def reference(self, X, V):
        """None: a finite network trained for finitely many steps has no exact limit."""
        return None, jnp.asarray(LimitKind.NONE, jnp.int32)

    def config(self) -> dict:
        cfg = {"student": "mlp", "method": "gd", "width": self.width}
        cfg.update(self.gd.config())
        return cfg


def make_mlp_learner(width: int, *, gd: GDConfig | None = None) -> MLPLearner:
    """``MLPLearner(width, gd)``: a two-layer ReLU network of ``width`` (even,
    >= 2) hidden units in the NTK parameterisation, trained by ``gd``
    (default ``GDConfig()``: plain SGD)."""
    return MLPLearner(width, gd)


__all__ = ["MLPLearner", "make_mlp_learner", "mlp_logits", "mlp_init"]
