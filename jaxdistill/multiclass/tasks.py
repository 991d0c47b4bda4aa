"""K-class transfer tasks: inputs, a teacher's logits in R^K and optional
ground-truth labels.

A K-class task provides ``sample_set(key, n) -> (X [n, d], U [n, K], y [n] | None)``
(the transfer set, the teacher's logits on it and the true labels when the
task has them) and ``held_out(key, num)`` (the same for the held-out inputs
of the risk and the error).  Built in:

* :class:`MultiClassPoolTask`: a finite pool with a linear teacher
  ``w_star`` [K, d] (or [d]: binary) or the logits of ANY teacher,
  ``teacher_logits`` [P, K] (or [P]: binary), optional ``labels`` and test
  inputs; how real data and trained networks enter (``pool_task_from_arrays``
  reads the arrays of a pool file and validates them);
* :class:`MultiClassGaussianTask`: x ~ N(0, I_d) with K teacher rows drawn
  from the task seed (and, optionally, a different labelling teacher: an
  imperfect teacher).

A binary teacher (w* [d], logits [P]) becomes the K = 2 teacher with logits
[0, u], whose student w_1 - w_0 is the binary student (docs/design.md fact 8).
"""

from __future__ import annotations

import abc
from typing import ClassVar, final

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from .._precision import check_dtype
from ..traced import traced_field
from ..validation import JaxDistillError, check_array, check_int, check_real

POOL_KEYS = ("inputs", "w_star", "test_inputs", "teacher_logits", "test_teacher_logits", "labels", "test_labels")


class AbstractMultiClassTask(eqx.Module):
    """A K-class transfer task (see the module docstring).

    Provide: ``d``, ``num_classes`` (>= 2), ``name``, ``has_labels``,
    ``sample_set``, ``held_out``; ``risk_is_exact`` says whether the risk
    over ``held_out`` is the task's exact risk (finite test sets) or a
    Monte-Carlo estimate."""

    name: eqx.AbstractClassVar[str]

    @property
    @abc.abstractmethod
    def d(self) -> int: ...

    @property
    @abc.abstractmethod
    def num_classes(self) -> int: ...

    @property
    def has_labels(self) -> bool:
        return False

    @property
    def risk_is_exact(self) -> bool:
        return False

    @property
    def has_linear_teacher(self) -> bool:
        """True when the teacher's logits are linear in the inputs (U = X W*^T):
        then every transfer set's centred log targets have an exact
        interpolant, which is the flow's limit for any n (fact 8); otherwise,
        for n > d, the limit is the minimiser of the cross-entropy and no
        closed form exists."""
        return False

    @abc.abstractmethod
    def sample_set(self, key: PRNGKeyArray, n: int):
        """(X [n, d], U [n, K], y [n] int32 or None)."""

    @abc.abstractmethod
    def held_out(self, key: PRNGKeyArray, num: int):
        """(X [M, d], U [M, K], y [M] int32 or None)."""

    def check_n(self, n: int) -> int:
        return check_int("n", n, minimum=1)

    def cast(self, dtype: str) -> "AbstractMultiClassTask":
        """Floating arrays to ``dtype`` (call inside ``precision(dtype)``); integer labels unchanged."""
        dt = jnp.float64 if check_dtype(dtype) == "float64" else jnp.float32

        def f(a):
            if isinstance(a, (np.ndarray, jax.Array)) and jnp.issubdtype(a.dtype, jnp.floating):
                return jnp.asarray(a, dt)
            if isinstance(a, np.ndarray):
                return jnp.asarray(a)
            return a

        return jax.tree_util.tree_map(f, self)

    def config(self) -> dict:
        return {"task": self.name, "d": self.d, "num_classes": self.num_classes}


class AbstractIIDMultiClassTask(AbstractMultiClassTask):
    """A K-class task whose transfer sets and held-out inputs are i.i.d. draws
    of one law: provide ``draw(key, num) -> (X, U, y or None)``."""

    @abc.abstractmethod
    def draw(self, key: PRNGKeyArray, num: int):
        """``num`` i.i.d. inputs with the teacher's logits (and labels or None)."""

    def sample_set(self, key, n):
        return self.draw(key, n)

    def held_out(self, key, num):
        return self.draw(key, num)


def _labels(name: str, value, length: int, K: int, length_name: str) -> np.ndarray:
    y = np.asarray(value)
    if y.ndim != 1 or y.shape[0] != length:
        raise JaxDistillError(f"{name} must have shape [{length_name}] = [{length}], got shape {y.shape}")
    if not (np.issubdtype(y.dtype, np.integer) or np.issubdtype(y.dtype, np.bool_)):
        if not np.issubdtype(y.dtype, np.floating) or not np.all(np.isfinite(y)) or np.any(y != np.round(y)):
            raise JaxDistillError(f"{name} must hold integer class labels in 0..{K - 1}, got dtype {y.dtype}"
                                  + ("" if not np.issubdtype(y.dtype, np.floating) else " with non-integer values"))
    if y.size and (y.min() < 0 or y.max() > K - 1):
        raise JaxDistillError(f"{name} must be class labels in 0..{K - 1} ({K} classes"
                              f"{', binary teacher' if K == 2 else ''}), got values in [{y.min()}, {y.max()}]")
    return y.astype(np.int32)


def _logits(name: str, value, rows: int, rows_name: str, K: int | None) -> np.ndarray:
    """Teacher logits [rows] (binary: -> [0, u]) or [rows, K]."""
    a = check_array(name, value, ndim=(1, 2), shape_text=f"[{rows_name}] or [{rows_name}, K]", allow_zero=True)
    if a.shape[0] != rows:
        raise JaxDistillError(f"{name} must have {rows} rows (one per {rows_name} input), got shape {a.shape}")
    if a.ndim == 1:
        a = np.stack([np.zeros_like(a), a], axis=1)
    if a.shape[1] < 2:
        raise JaxDistillError(f"{name} must have K >= 2 columns (classes), got shape {a.shape}")
    if K is not None and a.shape[1] != K:
        raise JaxDistillError(f"{name} has {a.shape[1]} classes but the teacher has {K}")
    return a


@final
class MultiClassPoolTask(AbstractMultiClassTask):
    """A finite pool of inputs with a K-class teacher (and optional labels).

    Transfer sets are drawn without replacement (the same indices as the
    binary ``tasks.PoolTask``); the held-out inputs are ``test_inputs`` when
    given, else the whole pool, and the risk over them is exact.

    Args:
        inputs: [P, d].
        w_star: a linear teacher [K, d] (or [d]: binary), or None.
        teacher_logits: the teacher's logits on the pool, [P, K] (or [P]), or
            None.  Exactly one of w_star and teacher_logits.
        test_inputs: [M, d] (optional).
        test_teacher_logits: [M, K] (or [M]); required with teacher_logits and
            test_inputs, refused otherwise.
        labels: ground-truth classes of the pool, [P] in 0..K-1 (optional).
        test_labels: [M]; required with labels and test_inputs.
        label: a name for configs.
    """

    pool: Float[Array, "P d"]
    w_star: Float[Array, "K d"] | None
    teacher_logits: Float[Array, "P K"] | None
    test_inputs: Float[Array, "M d"] | None
    test_teacher_logits: Float[Array, "M K"] | None
    labels: Int[Array, " P"] | None
    test_labels: Int[Array, " M"] | None
    label: str = eqx.field(static=True)
    linear_teacher: bool = eqx.field(static=True)
    name: ClassVar[str] = "pool"

    def __init__(self, inputs, w_star=None, teacher_logits=None, *, test_inputs=None, test_teacher_logits=None,
                 labels=None, test_labels=None, label: str = "pool"):
        pool = check_array("inputs", inputs, ndim=2, shape_text="[P, d]")
        P, d = pool.shape
        if d < 2:
            raise JaxDistillError(f"inputs must have d >= 2 columns, got shape {pool.shape}")
        if (w_star is None) == (teacher_logits is None):
            raise JaxDistillError("a pool needs exactly one teacher: 'w_star' ([d] or [K, d]) or 'teacher_logits' "
                                  f"([P] or [P, K]); got {'both' if w_star is not None else 'neither'}")
        K = None
        if w_star is not None:
            w = check_array("w_star", w_star, ndim=(1, 2), shape_text="[d] or [K, d]")
            if w.shape[-1] != d:
                raise JaxDistillError(f"w_star must have d = {d} columns (the inputs' dimension), got shape {w.shape}")
            if w.ndim == 1:
                w = np.stack([np.zeros_like(w), w])
            if w.shape[0] < 2:
                raise JaxDistillError(f"w_star must have K >= 2 rows (one per class), got shape {w.shape}")
            K = w.shape[0]
            self.w_star, self.teacher_logits = w, None
        else:
            self.teacher_logits = _logits("teacher_logits", teacher_logits, P, "P", None)
            self.w_star = None
            K = self.teacher_logits.shape[1]
        if test_inputs is not None:
            test = check_array("test_inputs", test_inputs, ndim=2, shape_text=f"[M, {d}]")
            if test.shape[1] != d:
                raise JaxDistillError(f"test_inputs must have shape [M, {d}], got shape {test.shape}")
            self.test_inputs = test
        else:
            self.test_inputs = None
        M = None if test_inputs is None else self.test_inputs.shape[0]
        if test_teacher_logits is not None:
            if teacher_logits is None:
                raise JaxDistillError("test_teacher_logits needs teacher_logits (with w_star the test logits are "
                                      "computed from it)")
            if test_inputs is None:
                raise JaxDistillError("test_teacher_logits needs test_inputs (the inputs they belong to)")
            self.test_teacher_logits = _logits("test_teacher_logits", test_teacher_logits, M, "M", K)
        else:
            if teacher_logits is not None and test_inputs is not None:
                raise JaxDistillError("test_inputs with teacher_logits need test_teacher_logits [M] or [M, K] "
                                      "(the teacher's logits on the test inputs)")
            self.test_teacher_logits = None
        self.labels = None if labels is None else _labels("labels", labels, P, K, "P")
        if test_labels is not None:
            if labels is None:
                raise JaxDistillError("test_labels needs labels (the ground truth of the pool) as well")
            if test_inputs is None:
                raise JaxDistillError("test_labels needs test_inputs (the inputs they belong to)")
            self.test_labels = _labels("test_labels", test_labels, M, K, "M")
        else:
            if labels is not None and test_inputs is not None:
                raise JaxDistillError("labels with test_inputs need test_labels [M] (the test error is measured on "
                                      "the test inputs)")
            self.test_labels = None
        self.pool = pool
        self.label = label
        self.linear_teacher = self.w_star is not None or logits_are_linear(pool, self.teacher_logits)

    @property
    def d(self) -> int:
        return self.pool.shape[1]

    @property
    def num_classes(self) -> int:
        return self.w_star.shape[0] if self.w_star is not None else self.teacher_logits.shape[1]

    @property
    def has_linear_teacher(self) -> bool:
        return self.linear_teacher

    @property
    def pool_size(self) -> int:
        return self.pool.shape[0]

    @property
    def has_labels(self) -> bool:
        return self.labels is not None

    @property
    def risk_is_exact(self) -> bool:
        return True

    def check_n(self, n: int) -> int:
        n = check_int("n", n, minimum=1)
        if n > self.pool_size:
            raise JaxDistillError(f"n must be <= the pool size {self.pool_size} (sampling without replacement; "
                                  f"allowed range 1 <= n <= {self.pool_size}), got {n}")
        return n

    def _teacher(self, X, logits):
        return X @ jnp.asarray(self.w_star).T if self.w_star is not None else jnp.asarray(logits)

    def sample_set(self, key, n):
        idx = jax.random.choice(key, self.pool_size, (n,), replace=False)
        X = jnp.asarray(self.pool)[idx]
        U = X @ jnp.asarray(self.w_star).T if self.w_star is not None else jnp.asarray(self.teacher_logits)[idx]
        y = None if self.labels is None else jnp.asarray(self.labels)[idx]
        return X, U, y

    def held_out(self, key, num):
        """The test inputs (or the whole pool) with the teacher's logits and labels; key and num unused."""
        if self.test_inputs is not None:
            X = jnp.asarray(self.test_inputs)
            return X, self._teacher(X, self.test_teacher_logits), (
                None if self.test_labels is None else jnp.asarray(self.test_labels))
        X = jnp.asarray(self.pool)
        return X, self._teacher(X, self.teacher_logits), None if self.labels is None else jnp.asarray(self.labels)

    def config(self) -> dict:
        return {"task": self.name, "label": self.label, "d": self.d, "num_classes": self.num_classes,
                "pool_size": self.pool_size, "teacher": "w_star" if self.w_star is not None else "teacher_logits",
                "has_labels": self.has_labels}


def logits_are_linear(inputs: np.ndarray, logits: np.ndarray, rtol: float = 1e-8) -> bool:
    """True when the class-centred ``logits`` [P, K] are a linear function of
    ``inputs`` [P, d] to ``rtol`` (least squares over the pool): the logits of
    a linear teacher given as numbers, e.g. the digits task's."""
    X = np.asarray(inputs, np.float64)
    Z = np.asarray(logits, np.float64)
    Z = Z - Z.mean(axis=1, keepdims=True)
    coef = np.linalg.lstsq(X, Z, rcond=None)[0]
    return bool(np.linalg.norm(X @ coef - Z) <= rtol * max(np.linalg.norm(Z), np.finfo(np.float64).tiny))


def pool_task_from_arrays(arrays: dict, *, label: str = "pool") -> MultiClassPoolTask:
    """A ``MultiClassPoolTask`` from the arrays of a pool file (``POOL_KEYS``);
    unknown names and missing ``inputs`` are refused with the allowed names."""
    unknown = [k for k in arrays if k not in POOL_KEYS]
    if unknown:
        raise JaxDistillError(f"unknown array(s) {', '.join(map(repr, unknown))}; a pool file holds "
                              f"{', '.join(POOL_KEYS)}")
    if "inputs" not in arrays:
        raise JaxDistillError(f"no array 'inputs' [P, d] (found: {', '.join(arrays) or 'none'})")
    return MultiClassPoolTask(arrays["inputs"], arrays.get("w_star"), arrays.get("teacher_logits"),
                              test_inputs=arrays.get("test_inputs"),
                              test_teacher_logits=arrays.get("test_teacher_logits"), labels=arrays.get("labels"),
                              test_labels=arrays.get("test_labels"), label=label)


def is_multiclass_pool(arrays: dict) -> bool:
    """True when a pool file needs the K-class path: teacher logits, labels or a [K, d] w_star."""
    w = arrays.get("w_star")
    return (any(k in arrays for k in ("teacher_logits", "test_teacher_logits", "labels", "test_labels"))
            or (w is not None and np.ndim(w) == 2))


def random_teacher(d: int, num_classes: int, seed: int, teacher_norm: float = 1.0) -> np.ndarray:
    """K teacher rows with i.i.d. N(0, teacher_norm^2 / d) entries (rows of norm ~ teacher_norm), from ``seed``."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, d, num_classes]))
    return rng.normal(size=(num_classes, d)) * (teacher_norm / np.sqrt(d))


@final
class MultiClassGaussianTask(AbstractIIDMultiClassTask):
    """x ~ N(0, I_d) with a K-class linear teacher W* [K, d].

    Args:
        d: input dimension (>= 2); num_classes: K >= 2.
        w_star: the teacher [K, d]; default ``random_teacher(d, K, seed, teacher_norm)``.
        seed: the task seed of the default teacher.
        teacher_norm: row norm scale of the default teacher.
        label_w: optional ground truth [K, d]: labels y = argmax(W_true x)
            (an imperfect teacher when it differs from w_star).
        label_noise: S >= 0, instead of ``label_w``: the ground truth is
            W_true = W* + S W' with W' = ``random_teacher(d, K, seed + 1,
            teacher_norm)`` a second random teacher (S = 0: the teacher's own
            labels; the larger S, the more the teacher errs).
    """

    dim: int = eqx.field(static=True)
    classes: int = eqx.field(static=True)
    w_star: Float[Array, "K d"]
    label_w: Float[Array, "K d"] | None
    seed: int = eqx.field(static=True)
    label_noise: float | None = traced_field()  # enters only label_w: traced, so it compiles nothing new
    name: ClassVar[str] = "gaussian"

    def __init__(self, d: int, num_classes: int, *, w_star=None, seed: int = 0, teacher_norm: float = 1.0,
                 label_w=None, label_noise: float | None = None):
        self.dim = check_int("d", d, minimum=2)
        self.classes = check_int("num_classes", num_classes, minimum=2)
        self.seed = check_int("seed", seed, minimum=0)
        check_real("teacher_norm", teacher_norm, gt=0.0)
        shape = f"[K, d] = [{self.classes}, {self.dim}]"
        if w_star is None:
            self.w_star = random_teacher(self.dim, self.classes, self.seed, teacher_norm)
        else:
            w = check_array("w_star", w_star, ndim=2, shape_text=shape)
            if w.shape != (self.classes, self.dim):
                raise JaxDistillError(f"w_star must have shape {shape}, got shape {w.shape}")
            self.w_star = w
        self.label_noise = None if label_noise is None else check_real("label_noise", label_noise, ge=0.0)
        if self.label_noise is not None:
            if label_w is not None:
                raise JaxDistillError("give either label_w (the ground truth) or label_noise (W* + S W'), not both")
            second = random_teacher(self.dim, self.classes, self.seed + 1, teacher_norm)
            label_w = np.asarray(self.w_star) + self.label_noise * second
        if label_w is not None:
            lw = check_array("label_w", label_w, ndim=2, shape_text=shape)
            if lw.shape != (self.classes, self.dim):
                raise JaxDistillError(f"label_w must have shape {shape}, got shape {lw.shape}")
            self.label_w = lw
        else:
            self.label_w = None

    @property
    def d(self) -> int:
        return self.dim

    @property
    def num_classes(self) -> int:
        return self.classes

    @property
    def has_labels(self) -> bool:
        return self.label_w is not None

    @property
    def has_linear_teacher(self) -> bool:
        return True

    def draw(self, key, num):
        X = jax.random.normal(key, (num, self.dim), dtype=jnp.asarray(self.w_star).dtype)
        U = X @ jnp.asarray(self.w_star).T
        y = None if self.label_w is None else jnp.argmax(X @ jnp.asarray(self.label_w).T, axis=-1).astype(jnp.int32)
        return X, U, y

    def config(self) -> dict:
        cfg = {"task": self.name, "d": self.d, "num_classes": self.num_classes, "task_seed": self.seed,
               "has_labels": self.has_labels}
        if self.label_noise is not None:
            cfg["label_noise"] = self.label_noise
        return cfg


__all__ = ["AbstractMultiClassTask", "AbstractIIDMultiClassTask", "MultiClassPoolTask", "MultiClassGaussianTask", "pool_task_from_arrays",
           "is_multiclass_pool", "random_teacher", "POOL_KEYS"]
