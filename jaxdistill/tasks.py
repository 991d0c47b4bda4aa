"""Transfer tasks: an input law P_x plus a teacher vector w* (section 3).

Every task is an ``equinox.Module`` with

* ``d``                   input dimension (static),
* ``w_star``              the teacher's weight vector, shape [d],
* ``sample(key, num)``    ``num`` i.i.d. inputs, shape [num, d],
* ``p_theta(theta)``      the exact reverse CDF of the unsigned angle
                          between w* and x (eq. 17), where it is known,
* ``rotationally_symmetric``  True when P_x is invariant under rotations
                          that fix w* and under x -> -x; then the transfer
                          risk of a student depends only on its angle to w*
                          (DESIGN.md fact 3) and ``analysis.exact_risk``
                          applies.

Built in: :class:`KappaPolynomialTask` (section 5.1), :class:`AngularMarginTask`
(Cor. 1, Fig. 2 left), :class:`IsotropicGaussianTask`,
:class:`GaussianTask` (user covariance), :class:`PoolTask` (a finite pool
of user inputs, drawn without replacement; real data such as MNIST), and
:class:`CustomTask` (user sampler).

Tasks never import learners or analysis (DESIGN.md, direction of imports).
"""

from __future__ import annotations

import math
from typing import Callable, ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray

from .validation import JaxDistillError, check_array, check_int, check_real

HALF_PI = math.pi / 2


def _default_teacher(d: int, teacher_norm: float) -> np.ndarray:
    w = np.zeros(d)
    w[0] = teacher_norm
    return w


def _float(a) -> np.ndarray:
    """Tasks store float64 numpy arrays; JAX casts them to the precision of
    the context they are used in (see ``_precision``)."""
    return np.asarray(a, dtype=np.float64)


def _dtype(a):
    """The floating dtype of the current precision context."""
    return jnp.asarray(a).dtype


def _check_teacher(w_star, d: int | None = None) -> np.ndarray:
    w = check_array("w_star", w_star, ndim=1, shape_text="[d]")
    if d is not None and w.shape[0] != d:
        raise JaxDistillError(f"w_star must have shape [d] = [{d}], got shape {w.shape}")
    return w


class Task(eqx.Module):
    """Abstract transfer task (P_x, w*)."""

    rotationally_symmetric: ClassVar[bool] = False
    name: ClassVar[str] = "task"

    @property
    def d(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def w_star(self) -> Float[Array, " d"]:  # pragma: no cover - overridden
        raise NotImplementedError

    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num d"]:  # pragma: no cover
        raise NotImplementedError

    def p_theta(self, theta: Float[Array, "..."]) -> Float[Array, "..."]:
        """Exact p(theta) = P[angle(w*, x) >= theta] (eq. 17)."""
        raise NotImplementedError(f"{type(self).__name__} has no exact p(theta); use analysis.empirical_p_theta")

    def config(self) -> dict:
        """JSON-able description used in run manifests."""
        return {"task": self.name, "d": self.d}

    def held_out(self, key: PRNGKeyArray, num: int) -> Float[Array, "num d"]:
        """Held-out inputs for Monte-Carlo risk (a fresh sample by default)."""
        return self.sample(key, num)


class _AngularTask(Task):
    """x = nu * z, nu ~ N(0, 1), z a unit vector at unsigned angle a from w*,
    uniform among such vectors.  Subclasses give the law of the angle to the
    decision boundary, g = pi/2 - a, through its inverse CDF."""

    rotationally_symmetric: ClassVar[bool] = True
    dim: int = eqx.field(static=True)
    teacher: Float[Array, " d"]

    @property
    def d(self) -> int:
        return self.dim

    @property
    def w_star(self) -> Float[Array, " d"]:
        return self.teacher

    def _boundary_angle(self, u: Float[Array, " num"]) -> Float[Array, " num"]:
        """Inverse CDF of g = pi/2 - a evaluated at uniforms u."""
        raise NotImplementedError

    def sample(self, key: PRNGKeyArray, num: int) -> Float[Array, "num d"]:
        k_angle, k_dir, k_scale = jax.random.split(key, 3)
        w = jnp.asarray(self.teacher)
        e = w / jnp.linalg.norm(w)
        u = jax.random.uniform(k_angle, (num,), dtype=w.dtype)
        a = HALF_PI - self._boundary_angle(u)
        g = jax.random.normal(k_dir, (num, self.dim), dtype=w.dtype)
        g = g - (g @ e)[:, None] * e[None, :]
        g = g / jnp.linalg.norm(g, axis=1, keepdims=True)
        z = jnp.cos(a)[:, None] * e[None, :] + jnp.sin(a)[:, None] * g
        nu = jax.random.normal(k_scale, (num,), dtype=w.dtype)
        return nu[:, None] * z


class KappaPolynomialTask(_AngularTask):
    """The kappa-polynomial angle task of section 5.1.

    The unsigned angle a between x and w* satisfies P[a >= theta] =
    (1 - 2 theta / pi)^kappa, i.e. p(theta) of eq. 17 is exactly this
    polynomial (Cor. 2 holds with c = 1).  kappa = 1 is a uniform angle.
    """

    kappa: float = eqx.field(static=True)
    name: ClassVar[str] = "kappa"

    def __init__(self, d: int, kappa: float = 1.0, *, w_star=None, teacher_norm: float = 1.0):
        self.dim = check_int("d", d, minimum=2, maximum=10**8)
        self.kappa = check_real("kappa", kappa, gt=0.0)
        if w_star is None:
            check_real("teacher_norm", teacher_norm, gt=0.0)
            self.teacher = _default_teacher(self.dim, teacher_norm)
        else:
            self.teacher = _float(_check_teacher(w_star, self.dim))

    def _boundary_angle(self, u):
        # P[g <= s] = P[a >= pi/2 - s] = (2 s / pi)^kappa
        return HALF_PI * u ** (1.0 / self.kappa)

    def p_theta(self, theta):
        theta = jnp.clip(jnp.asarray(theta), 0.0, HALF_PI)
        return (1.0 - theta / HALF_PI) ** self.kappa

    def config(self) -> dict:
        return {"task": self.name, "d": self.d, "kappa": self.kappa}


class AngularMarginTask(_AngularTask):
    """A task with an angular margin (Cor. 1, Fig. 2 left).

    No input lies within angle ``margin`` (beta0) of the teacher's decision
    boundary: the angle to the boundary, g = pi/2 - a, is distributed on
    [beta0, pi/2] with P[g - beta0 <= s] = (s / (pi/2 - beta0))^kappa.
    Then p(theta) = ((pi/2 - beta0 - theta) / (pi/2 - beta0))^kappa, which is
    0 for theta >= pi/2 - beta0, and Cor. 1 holds with beta = pi/2 - beta0,
    gamma = p(beta0).
    """

    margin: float = eqx.field(static=True)
    kappa: float = eqx.field(static=True)
    name: ClassVar[str] = "margin"

    def __init__(self, d: int, margin: float = 0.2, kappa: float = 1.0, *, w_star=None, teacher_norm: float = 1.0):
        self.dim = check_int("d", d, minimum=2, maximum=10**8)
        self.margin = check_real("margin", margin, ge=0.0, lt=HALF_PI)
        self.kappa = check_real("kappa", kappa, gt=0.0)
        if w_star is None:
            check_real("teacher_norm", teacher_norm, gt=0.0)
            self.teacher = _default_teacher(self.dim, teacher_norm)
        else:
            self.teacher = _float(_check_teacher(w_star, self.dim))

    def _boundary_angle(self, u):
        return self.margin + (HALF_PI - self.margin) * u ** (1.0 / self.kappa)

    def p_theta(self, theta):
        theta = jnp.clip(jnp.asarray(theta), 0.0, HALF_PI)
        width = HALF_PI - self.margin
        return jnp.clip((width - theta) / width, 0.0, 1.0) ** self.kappa

    def config(self) -> dict:
        return {"task": self.name, "d": self.d, "margin": self.margin, "kappa": self.kappa}


class IsotropicGaussianTask(Task):
    """x ~ N(0, I_d).  The angle between x and w* is that of a uniform point
    on the sphere: cos(a) = |t| with (t + 1)/2 ~ Beta((d-1)/2, (d-1)/2)."""

    rotationally_symmetric: ClassVar[bool] = True
    name: ClassVar[str] = "gaussian"
    dim: int = eqx.field(static=True)
    teacher: Float[Array, " d"]

    def __init__(self, d: int, *, w_star=None, teacher_norm: float = 1.0):
        self.dim = check_int("d", d, minimum=2, maximum=10**8)
        if w_star is None:
            check_real("teacher_norm", teacher_norm, gt=0.0)
            self.teacher = _default_teacher(self.dim, teacher_norm)
        else:
            self.teacher = _float(_check_teacher(w_star, self.dim))

    @property
    def d(self) -> int:
        return self.dim

    @property
    def w_star(self):
        return self.teacher

    def sample(self, key, num):
        return jax.random.normal(key, (num, self.dim), dtype=_dtype(self.teacher))

    def p_theta(self, theta):
        # p(theta) = P[|cos a| <= cos theta] = P[|t| <= cos theta]
        theta = jnp.clip(jnp.asarray(theta), 0.0, HALF_PI)
        half = (self.dim - 1) / 2.0
        c = jnp.cos(theta)
        return jax.scipy.special.betainc(half, half, (1.0 + c) / 2.0) - jax.scipy.special.betainc(
            half, half, (1.0 - c) / 2.0
        )


class GaussianTask(Task):
    """x ~ N(0, Sigma) for a user covariance Sigma (shape [d, d], positive
    definite).  Not rotationally symmetric in general; its transfer risk is
    nevertheless exact: R(w) = arccos(rho) / pi with rho the correlation of
    w.x and w*.x (``analysis.exact_risk`` uses this)."""

    name: ClassVar[str] = "gaussian-cov"
    dim: int = eqx.field(static=True)
    teacher: Float[Array, " d"]
    cov: Float[Array, "d d"]
    chol: Float[Array, "d d"]

    def __init__(self, cov, *, w_star=None, teacher_norm: float = 1.0):
        cov_np = check_array("cov", cov, ndim=2, shape_text="[d, d]")
        if cov_np.shape[0] != cov_np.shape[1]:
            raise JaxDistillError(f"cov must be square with shape [d, d], got shape {cov_np.shape}")
        self.dim = check_int("d", cov_np.shape[0], minimum=2)
        if not np.allclose(cov_np, cov_np.T, rtol=1e-10, atol=1e-12):
            raise JaxDistillError("cov must be symmetric")
        try:
            chol = np.linalg.cholesky(cov_np)
        except np.linalg.LinAlgError:
            raise JaxDistillError("cov must be positive definite (its Cholesky factorisation failed)") from None
        self.cov = _float(cov_np)
        self.chol = _float(chol)
        if w_star is None:
            check_real("teacher_norm", teacher_norm, gt=0.0)
            self.teacher = _default_teacher(self.dim, teacher_norm)
        else:
            self.teacher = _float(_check_teacher(w_star, self.dim))

    @property
    def d(self):
        return self.dim

    @property
    def w_star(self):
        return self.teacher

    def sample(self, key, num):
        g = jax.random.normal(key, (num, self.dim), dtype=_dtype(self.teacher))
        return g @ jnp.asarray(self.chol).T


class PoolTask(Task):
    """A finite pool of inputs (rows of ``inputs``) with a teacher vector.

    Transfer sets are drawn uniformly *without replacement* from the pool;
    Monte-Carlo risk uses ``test_inputs`` when given (e.g. the MNIST test
    images) and the whole pool otherwise.  This is how real data enters.
    """

    name: ClassVar[str] = "pool"
    pool: Float[Array, "P d"]
    teacher: Float[Array, " d"]
    test_inputs: Float[Array, "M d"] | None
    label: str = eqx.field(static=True)

    def __init__(self, inputs, w_star, *, test_inputs=None, label: str = "pool"):
        pool = check_array("inputs", inputs, ndim=2, shape_text="[P, d]")
        if pool.shape[1] < 2:
            raise JaxDistillError(f"inputs must have d >= 2 columns, got shape {pool.shape}")
        w = _check_teacher(w_star, pool.shape[1])
        self.pool = _float(pool)
        self.teacher = _float(w)
        if test_inputs is not None:
            test = check_array("test_inputs", test_inputs, ndim=2, shape_text=f"[M, {pool.shape[1]}]")
            if test.shape[1] != pool.shape[1]:
                raise JaxDistillError(f"test_inputs must have shape [M, {pool.shape[1]}], got shape {test.shape}")
            self.test_inputs = _float(test)
        else:
            self.test_inputs = None
        self.label = label

    @property
    def d(self):
        return self.pool.shape[1]

    @property
    def pool_size(self) -> int:
        return self.pool.shape[0]

    @property
    def w_star(self):
        return self.teacher

    def sample(self, key, num):
        if num > self.pool_size:
            raise JaxDistillError(f"n must be <= the pool size {self.pool_size} (sampling without replacement), got {num}")
        idx = jax.random.choice(key, self.pool_size, (num,), replace=False)
        return jnp.asarray(self.pool)[idx]

    def held_out(self, key, num):
        return jnp.asarray(self.test_inputs if self.test_inputs is not None else self.pool)

    def config(self) -> dict:
        return {"task": self.name, "label": self.label, "d": self.d, "pool_size": self.pool_size}


class CustomTask(Task):
    """A user task: ``sampler(key, num) -> [num, d]`` plus a teacher w*.

    ``p_theta`` (optional) is the exact reverse CDF of eq. 17 if the user
    knows it; ``rotationally_symmetric=True`` declares the symmetry of
    DESIGN.md fact 3 (then exact risk uses ``p_theta``).
    """

    name: ClassVar[str] = "custom"
    sampler: Callable = eqx.field(static=True)
    teacher: Float[Array, " d"]
    p_fn: Callable | None = eqx.field(static=True)
    symmetric: bool = eqx.field(static=True)

    def __init__(self, sampler: Callable, w_star, *, p_theta: Callable | None = None, rotationally_symmetric: bool = False):
        if not callable(sampler):
            raise JaxDistillError(f"sampler must be callable(key, num) -> [num, d], got {type(sampler).__name__}")
        self.teacher = _float(_check_teacher(w_star))
        if self.teacher.shape[0] < 2:
            raise JaxDistillError("w_star must have d >= 2 entries")
        self.sampler = sampler
        self.p_fn = p_theta
        if rotationally_symmetric and p_theta is None:
            raise JaxDistillError("rotationally_symmetric=True needs p_theta (the exact reverse CDF of eq. 17)")
        self.symmetric = bool(rotationally_symmetric)

    @property
    def d(self):
        return self.teacher.shape[0]

    @property
    def w_star(self):
        return self.teacher

    @property
    def is_symmetric(self) -> bool:
        return self.symmetric

    def sample(self, key, num):
        x = self.sampler(key, num)
        if x.shape != (num, self.d):
            raise JaxDistillError(f"sampler must return shape [num, d] = [{num}, {self.d}], got {x.shape}")
        return x.astype(_dtype(self.teacher))

    def p_theta(self, theta):
        if self.p_fn is None:
            return super().p_theta(theta)
        return self.p_fn(theta)


def is_rotationally_symmetric(task: Task) -> bool:
    """True when the exact-risk formula of DESIGN.md fact 3 applies."""
    if isinstance(task, CustomTask):
        return task.is_symmetric
    return type(task).rotationally_symmetric


def has_exact_p(task: Task) -> bool:
    if isinstance(task, CustomTask):
        return task.p_fn is not None
    return type(task).p_theta is not Task.p_theta


def make_task(name: str, *, d: int, kappa: float = 1.0, margin: float = 0.2, teacher_norm: float = 1.0, **kwargs) -> Task:
    """Build a built-in task by name (used by the CLI): kappa, margin, gaussian."""
    if name == "kappa":
        return KappaPolynomialTask(d, kappa, teacher_norm=teacher_norm)
    if name == "margin":
        return AngularMarginTask(d, margin, kappa, teacher_norm=teacher_norm)
    if name == "gaussian":
        return IsotropicGaussianTask(d, teacher_norm=teacher_norm)
    raise JaxDistillError(f"task must be one of kappa, margin, gaussian, pool, mnist; got {name!r}")
