"""Transfer tasks: an input law P_x plus a teacher vector w* (section 3).

A task owns everything that depends on its law: sampling (with indices for
a finite pool), held-out data, the validation of n, the exact transfer
risk and p(theta) where they are known.  The engine and ``analysis`` only
call these methods, so a user task has exactly the power of a built-in one.

The interface (``AbstractTask``, an ``equinox.Module``):

=================================  ==========================================
``d``                              input dimension (Python int >= 2)
``w_star``                         the teacher's weights, [d]
``name``                           class-level string used in configs
``sample(key, num)``               ``num`` inputs x ~ P_x, [num, d]
``check_n(n, extra=0)``            validate a set size before tracing
                                   (pools: n + extra <= pool size)
``sample_nested(key, n)``          (X [n, d], x [d]): X = sample(key, n),
                                   x drawn with fold_in(key, EXTRA_STREAM)
``held_out(key, num)``             held-out inputs for Monte-Carlo risk
``finite_support()``               every input of a finite law, or None
``has_exact_risk``, ``exact_risk(W)``   exact transfer risk (eq. 4) of [..., d]
``has_exact_p``, ``p_theta(theta)``     exact reverse CDF of the angle (eq. 17)
``rotationally_symmetric``,        the symmetry of docs/design.md fact 3 and
``risk_wedge``, ``risk_from_angle(phi)``  the quadrature R(phi) it allows
``cast(dtype)``                    the task with its arrays in float64/float32
``config()``                       a JSON-able description
=================================  ==========================================

Built in (final classes): :class:`KappaPolynomialTask` (section 5.1),
:class:`AngularMarginTask` (Cor. 1, Fig. 2 left), :class:`IsotropicGaussianTask`,
:class:`GaussianTask` (user covariance), :class:`PoolTask` (a finite pool of
user inputs drawn without replacement; real data such as MNIST), and
:class:`CustomTask` (a user sampler function).  ``make_task(name, d=...)``
builds the first three by name.

Writing a task
--------------
Subclass ``AbstractTask`` (equinox's abstract/final pattern): declare the
fields ``d`` (static) and ``w_star`` (or provide them as properties), set
``name``, implement ``sample``, and override what your law knows.  The base
``__check_init__`` checks that d >= 2 and w_star has shape [d].  A
rotationally symmetric law subclasses ``AbstractSymmetricTask`` instead and
implements ``p_theta``; its exact risk then comes from the quadrature of
docs/design.md fact 3 (set ``risk_wedge`` when no input lies within that
angle of the teacher's decision boundary)::

    import math
    from typing import ClassVar
    import equinox as eqx, jax, jax.numpy as jnp
    from jaxdistill.tasks import AbstractSymmetricTask

    class UniformAngleTask(AbstractSymmetricTask):
        '''x = nu (cos a e_1 + sin a g): a ~ U[0, pi/2], g uniform orthogonal to e_1.'''
        d: int = eqx.field(static=True)
        w_star: jax.Array
        name: ClassVar[str] = "uniform-angle"

        def __init__(self, d):
            self.d = d
            self.w_star = jnp.zeros(d).at[0].set(1.0)

        def sample(self, key, num):
            k1, k2, k3 = jax.random.split(key, 3)
            a = jax.random.uniform(k1, (num,), maxval=math.pi / 2)
            g = jax.random.normal(k2, (num, self.d)).at[:, 0].set(0.0)
            g = g / jnp.linalg.norm(g, axis=1, keepdims=True)
            z = g * jnp.sin(a)[:, None]
            z = z.at[:, 0].set(jnp.cos(a))
            return jax.random.normal(k3, (num,))[:, None] * z

        def p_theta(self, theta):
            return 1.0 - jnp.clip(theta, 0.0, math.pi / 2) / (math.pi / 2)

A law that is not symmetric but has a closed-form risk overrides
``has_exact_risk`` (return True) and ``exact_risk(W)``; a finite law
overrides ``check_n``, ``sample_nested``, ``held_out`` and ``finite_support``
as ``PoolTask`` does.  ``tests/test_tasks.py`` runs such tasks end to end.
Keep fields that change shapes or control flow static
(``eqx.field(static=True)``); arrays are leaves, cast by ``cast``.  A
scalar parameter that changes no shape (as kappa) can be declared with
``jaxdistill.traced.traced_field()``: it stays a Python float, and runs
that differ only in it share one compiled program (raise to it with
``traced.scalar_pow``, divide by it with ``traced.scalar_div``).

Tasks never import learners or analysis (docs/design.md, direction of
imports); the formulas they share with ``analysis`` live in
``jaxdistill.tasks.riskmath``.
"""

from .angular import AbstractAngularTask, AngularMarginTask, KappaPolynomialTask
from .base import EXTRA_STREAM, AbstractSymmetricTask, AbstractTask, Task
from .custom import CustomTask
from .gaussian import GaussianTask, IsotropicGaussianTask
from .pool import PoolTask
from .registry import TASK_CLASSES, TASK_OPTIONS, make_task

__all__ = [
    "EXTRA_STREAM",
    "AbstractTask",
    "AbstractSymmetricTask",
    "AbstractAngularTask",
    "Task",
    "KappaPolynomialTask",
    "AngularMarginTask",
    "IsotropicGaussianTask",
    "GaussianTask",
    "PoolTask",
    "CustomTask",
    "make_task",
    "TASK_CLASSES",
    "TASK_OPTIONS",
]
