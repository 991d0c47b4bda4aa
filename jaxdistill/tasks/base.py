"""The abstract task: what every transfer task (P_x, w*) provides.

``AbstractTask`` declares the interface; ``AbstractSymmetricTask`` adds the
exact risk of rotationally symmetric laws from their p(theta).  Concrete
tasks are final classes (see ``jaxdistill.tasks`` for how to write one).
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .._precision import check_dtype
from ..validation import JaxDistillError, check_array, check_int, check_real
from .riskmath import signed_angle, symmetric_risk

EXTRA_STREAM = 0xE87A  # fold_in tag of the extra input x of sample_nested


def default_teacher(d: int, teacher_norm: float) -> np.ndarray:
    """w* = teacher_norm * e_1 (float64), after checking teacher_norm in
    [1e-100, 1e100] (beyond, ||w*||^2 under- or overflows in float64 and the
    teacher's norm, angles and risk are not computable)."""
    check_real("teacher_norm", teacher_norm, ge=1e-100, le=1e100)
    w = np.zeros(d)
    w[0] = teacher_norm
    return w


def as_float64(a) -> np.ndarray:
    """Tasks store float64 numpy arrays; JAX casts them to the precision of
    the context they are used in (see ``jaxdistill.precision``)."""
    return np.asarray(a, dtype=np.float64)


def context_dtype(a):
    """The floating dtype ``a`` takes in the current precision context."""
    return jnp.asarray(a).dtype


def check_teacher(w_star, d: int | None = None) -> np.ndarray:
    """w_star as a float64 array of shape [d]: finite and not all zero."""
    w = check_array("w_star", w_star, ndim=1, shape_text="[d]")
    if d is not None and w.shape[0] != d:
        raise JaxDistillError(f"w_star must have shape [d] = [{d}], got shape {w.shape}")
    return as_float64(w)


def teacher_for(d: int, w_star, teacher_norm: float) -> np.ndarray:
    """The teacher of a built-in task: ``w_star`` if given, else teacher_norm * e_1."""
    return default_teacher(d, teacher_norm) if w_star is None else check_teacher(w_star, d)


class AbstractTask(eqx.Module):
    """A transfer task: an input law P_x and a teacher vector w* (section 3).

    Must be provided by a subclass:
        d: input dimension (a Python int >= 2; a static field or a property).
        w_star: the teacher's weight vector, shape [d].
        name: class-level string naming the task in configs.
        sample(key, num): ``num`` inputs x ~ P_x, shape [num, d].

    Provided here, to override where the task knows better:
        check_n, sample_nested, held_out, finite_support, has_exact_risk /
        exact_risk, has_exact_p / p_theta, rotationally_symmetric /
        risk_wedge / risk_from_angle, config.  The defaults describe an
        i.i.d. law with no known exact risk or p(theta).

    Final here: ``cast``.
    """

    d: eqx.AbstractVar[int]
    w_star: eqx.AbstractVar[Float[Array, " d"]]
    name: eqx.AbstractClassVar[str]

    def __check_init__(self):
        d = self.d
        if isinstance(d, bool) or not isinstance(d, (int, np.integer)) or d < 2:
            raise JaxDistillError(f"{type(self).__name__}: d must be a Python integer >= 2, got {d!r}")
        shape = tuple(jnp.shape(self.w_star))
        if shape != (d,):
            raise JaxDistillError(f"{type(self).__name__}: w_star must have shape [d] = [{d}], got shape {shape}")

    # ------------------------------------------------------------ sampling

    @abc.abstractmethod
    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num d"]:
        """``num`` inputs drawn from P_x (a transfer set when num = n)."""

    def check_n(self, n: int, extra: int = 0, *, name: str = "n") -> int:
        """Check a transfer-set size before any tracing.

        Args:
            n: the number of inputs of a set (an integer >= 1).
            extra: further inputs drawn alongside and distinct from the n
                (1 for ``sample_nested``); only finite pools care.
            name: how the error names the argument.

        Returns:
            n as a Python int.

        Raises:
            JaxDistillError: naming ``n`` and its allowed range.
        """
        check_int("extra", extra, minimum=0)
        return check_int(name, n, minimum=1)

    def sample_nested(self, key: PRNGKeyArray, n: int) -> tuple[Float[Array, "n d"], Float[Array, " d"]]:
        """A transfer set X and one extra input x (eq. 34).

        X is exactly ``sample(key, n)``; x is drawn with
        ``jax.random.fold_in(key, EXTRA_STREAM)`` (independently of X for an
        i.i.d. law; finite pools draw it from the inputs not in X).
        """
        X = self.sample(key, n)
        x = self.sample(jax.random.fold_in(key, EXTRA_STREAM), 1)[0]
        return X, x

    def held_out(self, key: PRNGKeyArray, num: int) -> Float[Array, "M d"]:
        """Held-out inputs for Monte-Carlo risk (a fresh sample of ``num`` by
        default; finite pools return their fixed test inputs)."""
        return self.sample(key, num)

    def finite_support(self) -> Float[Array, "P d"] | None:
        """Every input of a finite P_x (uniform over its rows), as stored, or
        None for a continuous law."""
        return None

    # ------------------------------------------------------------ exact quantities

    @property
    def has_exact_risk(self) -> bool:
        """True when ``exact_risk`` needs no sampling for this task."""
        return False

    def exact_risk(self, W: Float[Array, "... d"]) -> Float[Array, "..."]:
        """Exact transfer risk (eq. 4) of students W, where the task knows it."""
        raise JaxDistillError(
            f"the {self.name} task ({type(self).__name__}) has no exact transfer risk; use "
            "analysis.mc_risk(W, task.held_out(key, num), task.w_star) (Monte-Carlo, with its standard error)"
        )

    @property
    def has_exact_p(self) -> bool:
        """True when ``p_theta`` is exact (closed form)."""
        return False

    def p_theta(self, theta: Float[Array, "..."]) -> Float[Array, "..."]:
        """Exact p(theta) = P[angle(w*, x) >= theta] (eq. 17), theta in [0, pi/2]."""
        raise JaxDistillError(
            f"the {self.name} task ({type(self).__name__}) has no exact p(theta) (eq. 17); use "
            "analysis.empirical_p_theta(analysis.sample_angles(key, task, M), theta)"
        )

    @property
    def rotationally_symmetric(self) -> bool:
        """True when P_x is invariant under the rotations that fix w* and under
        x -> -x: then the risk depends only on the student's angle to w*
        (docs/design.md fact 3) and ``risk_from_angle`` applies."""
        return False

    @property
    def risk_wedge(self) -> float:
        """Half-width (radians, a Python float) of the wedge around the
        teacher's decision boundary that holds no input: p(theta) = 0 for
        theta >= pi/2 - risk_wedge.  0 unless the task has an angular margin."""
        return 0.0

    @property
    def risk_wedge_tan(self):
        """tan(risk_wedge), as the quadrature uses it: None to take it from
        ``risk_wedge`` (math.tan of a Python float); a task whose wedge is a
        traced setting gives the tangent taken in Python at construction
        (``jaxdistill.traced``)."""
        return None

    def risk_from_angle(self, phi: Float[Array, "..."]) -> Float[Array, "..."]:
        """R(phi) of docs/design.md fact 3: the exact risk of a student at
        signed angle phi (eq. 28) to w*, for a rotationally symmetric task."""
        if not self.rotationally_symmetric:
            raise JaxDistillError(
                f"risk_from_angle needs a rotationally symmetric task, got {type(self).__name__}"
            )
        return symmetric_risk(self.p_theta, self.d, phi, wedge=self.risk_wedge, tan_wedge=self.risk_wedge_tan)

    # ------------------------------------------------------------ Gram sampling

    @property
    def supports_gram(self) -> bool:
        """True when ``sample_gram`` draws (G = X X^T, u = X w*) directly, in
        O(n^2) whatever d (docs/design.md fact 13; n <= d - 1)."""
        return False

    def sample_gram(self, key: PRNGKeyArray, n: int) -> tuple[Float[Array, "n n"], Float[Array, " n"]]:
        """(G = X X^T [n, n], u = X w* [n]) of a transfer set of n <= d - 1
        inputs, drawn without the inputs (only where ``supports_gram``)."""
        raise JaxDistillError(
            f"the {self.name} task ({type(self).__name__}) cannot draw its Gram matrix directly (only the "
            "rotationally symmetric kappa, margin and isotropic gaussian tasks can); use the inputs sampler"
        )

    def exact_risk_from_angle(self, phi: Float[Array, "..."]) -> Float[Array, "..."]:
        """The exact risk of a student at signed angle phi (eq. 28) to w*:
        what ``exact_risk`` computes after the angle, for a rotationally
        symmetric task (``risk_from_angle``)."""
        return self.risk_from_angle(phi)

    # ------------------------------------------------------------ bookkeeping

    def cast(self, dtype: str) -> "AbstractTask":
        """The task with every floating (and numpy) array cast to ``dtype``
        ("float64" or "float32"); static fields unchanged.  Call it inside
        ``jaxdistill.precision(dtype)`` (as every entry point does): outside
        it JAX has no float64."""
        dt = jnp.float64 if check_dtype(dtype) == "float64" else jnp.float32
        return jax.tree_util.tree_map(
            lambda a: jnp.asarray(a, dt) if eqx.is_inexact_array(a) or isinstance(a, np.ndarray) else a, self
        )

    def config(self) -> dict:
        """JSON-able description used in run manifests."""
        return {"task": self.name, "d": self.d}


Task = AbstractTask  # the name the rest of the library and users know


class AbstractSymmetricTask(AbstractTask):
    """A rotationally symmetric task: P_x is invariant under the rotations
    that fix w* and under x -> -x.  Provide ``p_theta`` (exact, eq. 17) and
    ``sample``; the exact risk follows by the quadrature of
    docs/design.md fact 3.  A task whose inputs keep an angular margin from
    the teacher's boundary sets ``risk_wedge``."""

    @abc.abstractmethod
    def p_theta(self, theta: Float[Array, "..."]) -> Float[Array, "..."]:
        """Exact p(theta) = P[angle(w*, x) >= theta] (eq. 17)."""

    @property
    def rotationally_symmetric(self) -> bool:
        return True

    @property
    def has_exact_p(self) -> bool:
        return True

    @property
    def has_exact_risk(self) -> bool:
        return True

    def exact_risk(self, W: Float[Array, "... d"]) -> Float[Array, "..."]:
        """R(angle(W, w*)) by the quadrature of docs/design.md fact 3."""
        return self.risk_from_angle(signed_angle(jnp.asarray(W), self.w_star))


__all__ = [
    "EXTRA_STREAM",
    "AbstractTask",
    "AbstractSymmetricTask",
    "Task",
]
