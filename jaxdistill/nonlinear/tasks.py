"""Teachers beyond a linear w*: a random two-layer ReLU network, and any
binary linear-teacher task seen as a K = 2 task (docs/design.md fact 9).

* :class:`ReluTeacherTask`: x ~ N(0, I_d) labelled by a seeded random
  two-layer ReLU network with H hidden units,
  u(x) = s H^{-1/2} A (relu(W1 x) - m), W1 [H, d] with N(0, 1/d) entries,
  A [K, H] (binary: [1, H]) with N(0, 1) entries and
  m_j = E_x relu(w_j . x) = ||w_j|| / sqrt(2 pi), so every logit has mean
  exactly 0 over the input law (no class is favoured by a constant offset).
  Binary teachers have logits [0, u] (K = 2).
* :class:`BinaryTaskAsMultiClass`: a binary task of ``jaxdistill.tasks``
  (kappa, margin, Gaussian, pool, ...) with teacher logits [0, w*.x], so
  kernel and network students can learn from the paper's tasks.
* :func:`teacher_pool_arrays`: the arrays of a pool file (``inputs``,
  ``teacher_logits``, ``test_inputs``, ``test_teacher_logits``) drawn from
  a task, for ``--task pool`` (``jaxdistill make-pool``).
"""

from __future__ import annotations

import math
from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from ..multiclass.tasks import AbstractIIDMultiClassTask, AbstractMultiClassTask
from ..tasks import AbstractTask
from ..traced import traced_field
from ..validation import JaxDistillError, check_int, check_real

DEFAULT_TEACHER_SCALE = 4.0


def relu_teacher_weights(d: int, width: int, outputs: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(W1 [H, d] with N(0, 1/d) entries, A [outputs, H] with N(0, 1) entries) from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, d, width, outputs, 7]))
    return rng.normal(size=(width, d)) / math.sqrt(d), rng.normal(size=(outputs, width))


@final
class ReluTeacherTask(AbstractIIDMultiClassTask):
    """Gaussian inputs labelled by a random two-layer ReLU network (module docstring).

    Args:
        d: input dimension (>= 2).
        teacher_width: H >= 1 hidden units.
        num_classes: K >= 2 (2: a binary teacher, logits [0, u]).
        seed: the teacher's seed.
        teacher_scale: s > 0, multiplies the logits (default 4).
    """

    dim: int = eqx.field(static=True)
    classes: int = eqx.field(static=True)
    teacher_width: int = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    teacher_scale: float = traced_field()  # traced arguments of the compiled run (jaxdistill.traced)
    logit_scale: float = traced_field()  # teacher_scale / sqrt(teacher_width), taken in Python as before
    W1: Float[Array, "H d"]
    A: Float[Array, "O H"]
    name: ClassVar[str] = "relu-teacher"

    def __init__(self, d: int, teacher_width: int, num_classes: int = 2, *, seed: int = 0,
                 teacher_scale: float = DEFAULT_TEACHER_SCALE):
        self.dim = check_int("d", d, minimum=2)
        self.teacher_width = check_int("teacher_width", teacher_width, minimum=1)
        self.classes = check_int("num_classes", num_classes, minimum=2)
        self.seed = check_int("seed", seed, minimum=0)
        self.teacher_scale = check_real("teacher_scale", teacher_scale, gt=0.0)
        self.logit_scale = self.teacher_scale / math.sqrt(self.teacher_width)
        outputs = 1 if self.classes == 2 else self.classes
        self.W1, self.A = relu_teacher_weights(self.dim, self.teacher_width, outputs, self.seed)

    @property
    def d(self) -> int:
        return self.dim

    @property
    def num_classes(self) -> int:
        return self.classes

    def logits(self, X: Float[Array, "m d"]) -> Float[Array, "m K"]:
        """The teacher's logits [m, K] (binary: [0, u])."""
        W1, A = jnp.asarray(self.W1), jnp.asarray(self.A)
        mean = jnp.linalg.norm(W1, axis=1) / math.sqrt(2.0 * math.pi)  # E_x relu(w_j . x), x ~ N(0, I)
        hidden = jax.nn.relu(X @ W1.T) - mean
        out = self.logit_scale * hidden @ A.T
        return jnp.concatenate([jnp.zeros_like(out), out], axis=1) if self.classes == 2 else out

    def draw(self, key, num):
        X = jax.random.normal(key, (num, self.dim), dtype=jnp.asarray(self.W1).dtype)
        return X, self.logits(X), None

    def config(self) -> dict:
        return {"task": self.name, "d": self.d, "num_classes": self.num_classes, "teacher_width": self.teacher_width,
                "task_seed": self.seed, "teacher_scale": self.teacher_scale}


@final
class BinaryTaskAsMultiClass(AbstractMultiClassTask):
    """A binary linear-teacher task as the K = 2 task with logits [0, w*.x].

    Args:
        task: a ``jaxdistill.tasks.AbstractTask``.  The risk is exact over a
            finite pool's test inputs, else Monte-Carlo.
    """

    task: AbstractTask
    name: ClassVar[str] = "binary"

    def __init__(self, task: AbstractTask):
        if not isinstance(task, AbstractTask):
            raise JaxDistillError(f"task must be a binary task (jaxdistill.tasks.AbstractTask), got {task!r}")
        self.task = task

    @property
    def d(self) -> int:
        return self.task.d

    @property
    def num_classes(self) -> int:
        return 2

    @property
    def has_linear_teacher(self) -> bool:
        return True

    @property
    def risk_is_exact(self) -> bool:
        return self.task.finite_support() is not None

    def check_n(self, n: int) -> int:
        return self.task.check_n(n)

    def _with_logits(self, X):
        u = X @ jnp.asarray(self.task.w_star, X.dtype)
        return X, jnp.stack([jnp.zeros_like(u), u], axis=1), None

    def sample_set(self, key, n):
        return self._with_logits(self.task.sample(key, n))

    def held_out(self, key, num):
        return self._with_logits(self.task.held_out(key, num))

    def cast(self, dtype: str) -> "BinaryTaskAsMultiClass":
        return BinaryTaskAsMultiClass(self.task.cast(dtype))

    def config(self) -> dict:
        cfg = dict(self.task.config())
        cfg["num_classes"] = 2
        return cfg


def as_multiclass_task(task) -> AbstractMultiClassTask:
    """K-class tasks unchanged; a binary task with a teacher vector as the
    K = 2 task with logits [0, w*.x] (``BinaryTaskAsMultiClass``)."""
    return task if isinstance(task, AbstractMultiClassTask) else BinaryTaskAsMultiClass(task)


def teacher_pool_arrays(task: AbstractMultiClassTask, key, size: int, test_size: int) -> dict[str, np.ndarray]:
    """A pool file's arrays drawn from ``task``: ``inputs`` [P, d] and
    ``teacher_logits`` [P] (binary: u) or [P, K], ``test_inputs`` [M, d] and
    ``test_teacher_logits``; float64 numpy.  A task with ground-truth labels
    (``label_noise``) adds ``labels`` [P] and ``test_labels`` [M] (int32)."""
    size = check_int("size", size, minimum=1)
    test_size = check_int("test_size", test_size, minimum=1)
    k_pool, k_test = jax.random.split(jnp.asarray(key) if not isinstance(key, int) else jax.random.PRNGKey(key))
    X, U, y = task.sample_set(k_pool, size)
    Xt, Ut, yt = task.held_out(k_test, test_size)

    def logits(U):
        U = np.asarray(U, np.float64)
        return U[:, 1] - U[:, 0] if task.num_classes == 2 else U

    arrays = {"inputs": np.asarray(X, np.float64), "teacher_logits": logits(U),
              "test_inputs": np.asarray(Xt, np.float64), "test_teacher_logits": logits(Ut)}
    if y is not None and yt is not None:
        arrays.update(labels=np.asarray(y, np.int32), test_labels=np.asarray(yt, np.int32))
    return arrays


__all__ = ["ReluTeacherTask", "BinaryTaskAsMultiClass", "teacher_pool_arrays", "as_multiclass_task", "relu_teacher_weights",
           "DEFAULT_TEACHER_SCALE"]
