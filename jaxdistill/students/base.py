"""The learner interface shared by every student, and the three learners of
Theorem 1 (closed form, gradient flow, discrete optimiser).

A learner is an equinox Module (hashable, usable as a static argument of
``eqx.filter_jit``) following equinox's abstract/final pattern: the
abstract ``AbstractLearner`` declares the interface, every concrete learner
is final (it is not subclassed further) and has no array fields.

* ``name``: a class-level string (the run config's "method").
* ``fit(key, design, V) -> LearnerOutput`` for ONE transfer set (gymnax
  style: the key comes first, one function for one set, ``vmap`` for many):
  ``design`` is the set as the student sees it (``jaxdistill.design``: its
  inputs X, or only their Gram matrix for the Gram sampler) and V [n, K]
  its K-class targets, as logits (any per-row shift; -inf for a zero
  target probability).  ``key`` is the set's own key, for learners with
  randomness (deep-linear init, w_delta); deterministic learners ignore it.
* ``check_targets(targets)``: raises ``JaxDistillError`` when the learner
  cannot use these targets (e.g. the closed form with hard targets).
* ``for_dtype(dtype)``: the learner as it runs in float64 (unchanged) or
  float32 (every ``FlowConfig`` field's newton_tol raised to at least
  ``FLOAT32_MIN_NEWTON_TOL``).
* ``config()``: a JSON-able dict ``{"method": name, ...}``.

Binary = K = 2 in logit-difference coordinates: the binary learners
(``AbstractBinaryLearner``: the linear learners here, w_delta, hard-target,
deep) read K = 2 targets as the teacher logits u = v_1 - v_0 (exactly u for
``design.two_class_logits(u)``) and return the student w [d] whose logit is
w.x; they implement ``fit_logits(key, X, u)`` (and ``fit_gram`` where a
Gram-space form exists).  The K-class learners (``multiclass``,
``nonlinear``) return W [K, d] or their own parameters.

To add a learner: subclass ``AbstractBinaryLearner`` (implement
``fit_logits`` and ``check_targets``) or ``AbstractLearner`` (implement
``fit`` and ``check_targets``), and give it ``name: ClassVar[str]``.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._precision import check_dtype
from ..design import AbstractDesign, GramDesign, inputs_of, logit_difference
from ..status import Status
from ..teachers import TargetSpec, cross_entropy
from ..validation import JaxDistillError, check_choice
from .closed_form import reduce_data, reduced_target
from .discrete import GDConfig, gradient_descent
from .flow import FlowConfig, gradient_flow, gram_gradient_flow


class LearnerOutput(eqx.Module):
    """What every learner returns for one set.

    Attributes:
        w: the student's parameters: w [d] for a binary learner on inputs
            (its n (+ 2) span coordinates on a ``GramDesign``), W [K, d] for
            a linear K-class learner (``W`` is the same array), [K, n]
            feature coordinates for a kernel student, the weights of a network.
        status: status code (``jaxdistill.status.Status``).
        num_steps: solver / optimiser steps (0 for closed forms).
        loss: final training loss (eq. 1; K-class: the mean cross-entropy).
        extras: learner-specific per-set scalars (e.g. the eq. 76 bound).
    """

    w: Array
    status: Int[Array, ""]
    num_steps: Int[Array, ""]
    loss: Float[Array, ""]
    extras: dict = eqx.field(default_factory=dict)

    @property
    def W(self) -> Array:
        """The student's parameters (``w``), the name K-class code reads them by."""
        return self.w


def _describe(value):
    """A JSON-able form of a learner field."""
    if isinstance(value, (FlowConfig, GDConfig)):
        return value.config()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return " ".join(repr(value).split())


def needs_soft_targets(learner, targets: TargetSpec, why: str) -> None:
    """Raise ``JaxDistillError`` unless ``targets`` are soft (for ``learner.check_targets``)."""
    if not isinstance(targets, TargetSpec):
        raise JaxDistillError(f"targets must be a TargetSpec, got {targets!r}")
    if not targets.is_soft:
        raise JaxDistillError(f"{type(learner).__name__} (method {learner.name!r}) needs soft targets ({why}); got "
                              f"targets={targets.kind!r}. For hard targets use HardTargetLearner (max-margin, flow or gd)")


class AbstractLearner(eqx.Module):
    """The root of every learner (see the module docstring for the interface):
    the binary learners here and in ``students.deep``, and the K-class ones
    (``multiclass.AbstractSoftmaxLearner``: linear softmax, kernel, network)."""

    name: eqx.AbstractClassVar[str]
    multiclass: ClassVar[bool] = False
    """True for learners of K-class students (``multiclass.AbstractSoftmaxLearner``:
    students W [K, d] or feature coefficients); False for the binary learners
    (``AbstractBinaryLearner``: K = 2 targets, students w [d])."""
    randomised: ClassVar[bool] = False
    """True for learners whose fit draws from its key (w_delta's direction, a
    deep or network student's initialisation); the others ignore the key.
    Only for these does the monotonicity coupling (shared or independent
    draws, ``analysis.monotonicity``) change anything."""

    @abc.abstractmethod
    def fit(self, key: PRNGKeyArray, design: AbstractDesign, V: Float[Array, "n K"]) -> LearnerOutput:
        """Train on ONE transfer set: its design (inputs X [n, d], or their
        Gram matrix) and its K-class target logits V [n, K] (-inf for a zero
        target probability; K = 2 for a binary task)."""

    @abc.abstractmethod
    def check_targets(self, targets: TargetSpec) -> None:
        """Raise ``JaxDistillError`` if this learner cannot use ``targets``."""

    def for_dtype(self, dtype: str) -> "AbstractLearner":
        """This learner as it runs in ``dtype`` ("float64": unchanged; "float32":
        every ``FlowConfig`` field gets newton_tol >= ``FLOAT32_MIN_NEWTON_TOL``)."""
        dtype = check_dtype(dtype)
        changes = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, FlowConfig):
                adjusted = v.for_dtype(dtype)
                if adjusted is not v:
                    changes[f.name] = adjusted
        if not changes:
            return self
        names = list(changes)
        return eqx.tree_at(lambda m: [getattr(m, k) for k in names], self, [changes[k] for k in names])

    def config(self) -> dict:
        """JSON-able description: ``{"method": name, <field>: value, ...}``
        (configs as nested dicts, other objects as one-line reprs; a field
        itself called ``method`` is reported as ``<name>_method``, e.g.
        ``hard_target_method``)."""
        cfg = {"method": self.name}
        for f in dataclasses.fields(self):
            key = f"{self.name.replace('-', '_')}_method" if f.name == "method" else f.name
            cfg[key] = _describe(getattr(self, f.name))
        return cfg


class AbstractBinaryLearner(AbstractLearner):
    """A learner of the binary student w [d] (K = 2 in logit-difference
    coordinates): ``fit`` reads the targets as the teacher logits
    u = v_1 - v_0 [n] (+-inf for hard labels) and hands the inputs to
    ``fit_logits``, or a Gram matrix to ``fit_gram`` (learners with a
    Gram-space form, ``students.gram``; the others refuse it by name)."""

    def fit(self, key: PRNGKeyArray, design: AbstractDesign, V: Float[Array, "n 2"]) -> LearnerOutput:
        u = logit_difference(V, self)
        if isinstance(design, GramDesign):
            return self.fit_gram(key, design, u)
        return self.fit_logits(key, inputs_of(design, self), u)

    @abc.abstractmethod
    def fit_logits(self, key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"]) -> LearnerOutput:
        """Train on ONE transfer set: X [n, d], teacher logits u [n] (+-inf for hard targets)."""

    def fit_gram(self, key: PRNGKeyArray, design: GramDesign, u: Float[Array, " n"]) -> LearnerOutput:
        """The Gram-space fit (``w``: the student's coordinates in the
        orthonormal basis X^T L^{-T} of span X); refused for learners
        that need the inputs."""
        inputs_of(design, self)  # raises, naming the learner
        raise AssertionError  # unreachable


@final
class ClosedFormLearner(AbstractBinaryLearner):
    """Thm 1 (eq. 6): w_hat, computed with a thin QR (no Gram inverse).
    Soft targets only (hard labels have no finite minimiser)."""

    name: ClassVar[str] = "closed-form"

    def fit_logits(self, key: PRNGKeyArray, X: Float[Array, "n d"], u: Float[Array, " n"]) -> LearnerOutput:
        red = reduce_data(X)
        w = red.Q @ reduced_target(red, u)  # = closed_form(X, u), one QR
        ok = red.rank_ok & jnp.all(jnp.isfinite(w))
        return LearnerOutput(
            w=w,
            status=jnp.where(ok, Status.CONVERGED, Status.RANK_DEFICIENT).astype(jnp.int32),
            num_steps=jnp.asarray(0, jnp.int32),
            loss=cross_entropy(X @ w, u),
        )

    def fit_gram(self, key, design: GramDesign, u) -> LearnerOutput:
        """Thm 1 (eq. 6) in Gram space: w_hat = X^T G^{-1} u; ``w`` holds its
        coordinates c_hat = L^{-1} u in the orthonormal basis X^T L^{-T} of
        span X, [n] (docs/design.md fact 13)."""
        fac = design.factor()
        c = fac.L_inv @ u
        ok = fac.rank_ok & jnp.all(jnp.isfinite(c))
        return LearnerOutput(
            w=c,
            status=jnp.where(ok, Status.CONVERGED, Status.RANK_DEFICIENT).astype(jnp.int32),
            num_steps=jnp.asarray(0, jnp.int32),
            loss=cross_entropy(fac.L @ c, u),
        )

    def check_targets(self, targets: TargetSpec) -> None:
        needs_soft_targets(self, targets, "the closed form of Thm 1 is the limit of the flow on soft labels")


@final
class FlowLearner(AbstractBinaryLearner):
    """Gradient flow of eq. 3 (N = 1) with diffrax, to a steady state
    (soft targets) or to ``flow.t_max`` (hard targets: "finite_horizon").

    Attributes:
        flow: ``FlowConfig`` (solver, step-size controller, adjoint, stopping).
    """

    flow: FlowConfig = FlowConfig()
    name: ClassVar[str] = "flow"

    def fit_logits(self, key, X, u) -> LearnerOutput:
        return _flow_output(gradient_flow(X, u, self.flow))

    def fit_gram(self, key, design: GramDesign, u) -> LearnerOutput:
        """The logit flow from G alone (``gram_gradient_flow``); ``w`` holds
        the student's coordinates c = L^{-1} z (docs/design.md fact 13)."""
        if self.flow.coordinates != "reduced":
            inputs_of(design, self)  # the plain d-dimensional flow needs the inputs: refused by name
        return _flow_output(gram_gradient_flow(design.gram(), u, self.flow))

    def check_targets(self, targets: TargetSpec) -> None:
        return None


def _flow_output(res) -> LearnerOutput:
    return LearnerOutput(w=res.w, status=res.status, num_steps=res.num_steps, loss=res.loss,
                         extras={"t_final": res.t_final, "newton_rel": res.newton_rel})


@final
class GDLearner(AbstractBinaryLearner):
    """Discrete optimiser (optax) for a fixed number of steps (soft or hard targets).

    Attributes:
        gd: ``GDConfig`` (optimizer, learning_rate, steps).
    """

    gd: GDConfig = GDConfig()
    name: ClassVar[str] = "gd"

    def fit_logits(self, key, X, u) -> LearnerOutput:
        res = gradient_descent(X, u, self.gd)
        return LearnerOutput(w=res.w, status=res.status, num_steps=res.num_steps, loss=res.loss)

    def check_targets(self, targets: TargetSpec) -> None:
        return None


METHODS = ("closed-form", "flow", "gd")


def make_learner(method: str, *, flow: FlowConfig | None = None, gd: GDConfig | None = None) -> AbstractLearner:
    """The learner of Thm 1 named by ``method``.

    Args:
        method: "closed-form" (eq. 6), "flow" (gradient flow, eq. 3) or
            "gd" (optax optimiser).
        flow: ``FlowConfig``; applies only to method "flow".
        gd: ``GDConfig``; applies only to method "gd".

    Raises:
        JaxDistillError: naming ``flow`` / ``gd`` when given for a method it
            does not apply to (an option is never silently unused).
    """
    check_choice("method", method, METHODS)
    if flow is not None:
        if not isinstance(flow, FlowConfig):
            raise JaxDistillError(f"flow must be a FlowConfig, got {type(flow).__name__}")
        if method != "flow":
            raise JaxDistillError(f"flow= applies only to method='flow' (the gradient flow); got method={method!r}")
    if gd is not None:
        if not isinstance(gd, GDConfig):
            raise JaxDistillError(f"gd must be a GDConfig, got {type(gd).__name__}")
        if method != "gd":
            raise JaxDistillError(f"gd= applies only to method='gd' (a discrete optimiser); got method={method!r}")
    if method == "closed-form":
        return ClosedFormLearner()
    if method == "flow":
        return FlowLearner(flow) if flow is not None else FlowLearner()
    return GDLearner(gd) if gd is not None else GDLearner()
