"""Real K = 10 tasks: the shipped 8x8 digits and the full MNIST (all digits).

Shipped data: ``jaxdistill/data/digits8x8.npz``, the 1,797 8x8 handwritten
digits bundled with scikit-learn (BSD 3-Clause; see
``data/DIGITS_README.md``), pixels / 16 in [0, 1], inputs in R^64.  Read with
numpy only (scikit-learn is not imported).

The task (``digits_task``), the K-class counterpart of ``mnist01_task``:

1. a seeded permutation of the images splits them into a *test part*
   (``test_fraction`` of them, default one quarter) and the rest; the rest
   is split into a *teacher part* (``teacher_fraction`` of it) and the
   *transfer pool*;
2. the teacher W* [10, 64] is a multinomial logistic regression without
   bias, fitted on the teacher part to the minimiser of mean cross-entropy +
   (l2 / 2) ||W||_F^2 by L-BFGS from W = 0 (deterministic);
3. the task is a ``MultiClassPoolTask`` whose inputs are the pool images,
   with the teacher's logits on the pool and on the test images and the true
   digit labels of both: the transfer risk is the disagreement with the
   teacher's argmax on the test images, the error the disagreement with the
   true digit.

``mnist_multiclass_task(data)`` does the same with ``DigitData`` of all ten
digits (e.g. ``load_mnist_idx(...)`` of the full MNIST): teacher part and
pool from the training images, the test images as the test part.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..datasets import DigitData, read_npz
from ..validation import JaxDistillError, check_int, check_real
from .tasks import MultiClassPoolTask

NUM_DIGIT_CLASSES = 10


def digits_path() -> Path:
    """The shipped ``digits8x8.npz``."""
    return Path(str(resources.files("jaxdistill") / "data" / "digits8x8.npz"))


def load_digits8x8(path=None) -> tuple[np.ndarray, np.ndarray]:
    """(images [1797, 64] float64 in [0, 1], labels [1797] int64) of the shipped file (or ``path``)."""
    path = Path(path) if path is not None else digits_path()
    arrays = read_npz(path, ("images", "labels"), what="digits file")
    x, y = np.asarray(arrays["images"], np.float64), np.asarray(arrays["labels"]).astype(np.int64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise JaxDistillError(f"digits file {path}: images must be [N, d] and labels [N], got {x.shape}, {y.shape}")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise JaxDistillError(f"digits file {path}: labels must be digits 0-9, got range [{y.min()}, {y.max()}]")
    return x, y


def fit_softmax_regression(X: np.ndarray, y: np.ndarray, num_classes: int, l2: float, *, max_iter: int = 10_000
                           ) -> tuple[np.ndarray, int, float]:
    """argmin_W mean_i [logsumexp(W x_i) - (W x_i)_{y_i}] + l2/2 ||W||_F^2
    (strictly convex for l2 > 0) by L-BFGS (scipy) from W = 0.

    Returns (W [K, d], iterations, final gradient norm)."""
    from scipy.optimize import minimize
    from scipy.special import logsumexp

    n, d = X.shape
    Y = np.zeros((n, num_classes))
    Y[np.arange(n), y] = 1.0

    def fg(w):
        W = w.reshape(num_classes, d)
        Z = X @ W.T
        lse = logsumexp(Z, axis=1)
        P = np.exp(Z - lse[:, None])
        f = float(np.mean(lse - np.sum(Y * Z, axis=1)) + 0.5 * l2 * np.sum(W * W))
        return f, ((P - Y).T @ X / n + l2 * W).ravel()

    res = minimize(fg, np.zeros(num_classes * d), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-11, "ftol": 1e-16, "maxiter": max_iter, "maxcor": 30})
    return res.x.reshape(num_classes, d), int(res.nit), float(np.linalg.norm(fg(res.x)[1]))


@dataclass(frozen=True)
class MultiClassTeacherFit:
    """A K-class logistic-regression teacher and its split.

    Attributes:
        w_star: [K, d]; teacher_idx, pool_idx, test_idx: indices into the
            data the split was made from (test_idx None when the data had
            its own test set); train_accuracy (teacher part) and
            test_accuracy (test part) against the true labels; l2;
            iterations and grad_norm of the optimiser.
    """

    w_star: np.ndarray
    teacher_idx: np.ndarray
    pool_idx: np.ndarray
    test_idx: np.ndarray | None
    train_accuracy: float
    test_accuracy: float
    l2: float
    iterations: int
    grad_norm: float


def _split_fit(x, y, x_test, y_test, seed, teacher_fraction, l2, test_idx=None) -> MultiClassTeacherFit:
    perm = np.random.default_rng(seed).permutation(len(x))
    k = int(round(teacher_fraction * len(x)))
    if k < 1 or k >= len(x):
        raise JaxDistillError(f"teacher_fraction {teacher_fraction} leaves an empty teacher part or pool "
                              f"({len(x)} images)")
    t_idx, p_idx = np.sort(perm[:k]), np.sort(perm[k:])
    W, iters, gn = fit_softmax_regression(x[t_idx], y[t_idx], NUM_DIGIT_CLASSES, l2)
    acc = lambda X, yy: float(np.mean(np.argmax(X @ W.T, axis=1) == yy))
    return MultiClassTeacherFit(W, t_idx, p_idx, test_idx, acc(x[t_idx], y[t_idx]), acc(x_test, y_test), l2, iters,
                                gn)


@functools.lru_cache(maxsize=1)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    return load_digits8x8()


def _digits_split(seed: int, test_fraction: float):
    x, y = _digits()
    perm = np.random.default_rng(np.random.SeedSequence([seed, 0xD1])).permutation(len(x))
    m = int(round(test_fraction * len(x)))
    if m < 1 or m >= len(x) - 1:
        raise JaxDistillError(f"test_fraction {test_fraction} leaves an empty test part or training part "
                              f"({len(x)} images)")
    test_idx, rest = np.sort(perm[:m]), np.sort(perm[m:])
    return x[rest], y[rest], x[test_idx], y[test_idx], test_idx, rest


@functools.lru_cache(maxsize=8)
def _digits_teacher_cached(seed, teacher_fraction, test_fraction, l2):
    xr, yr, xt, yt, test_idx, rest = _digits_split(seed, test_fraction)
    fit = _split_fit(xr, yr, xt, yt, seed, teacher_fraction, l2, test_idx)
    # indices into the shipped file
    return MultiClassTeacherFit(fit.w_star, rest[fit.teacher_idx], rest[fit.pool_idx], test_idx,
                                fit.train_accuracy, fit.test_accuracy, l2, fit.iterations, fit.grad_norm)


def digits_teacher(seed: int = 0, teacher_fraction: float = 0.5, *, test_fraction: float = 0.25,
                   l2: float = 1e-3) -> MultiClassTeacherFit:
    """The teacher of ``digits_task`` and its split (indices into the shipped file)."""
    seed = check_int("seed", seed, minimum=0)
    teacher_fraction = check_real("teacher_fraction", teacher_fraction, gt=0.0, lt=1.0)
    test_fraction = check_real("test_fraction", test_fraction, gt=0.0, lt=1.0)
    l2 = check_real("l2", l2, gt=0.0)
    return _digits_teacher_cached(seed, teacher_fraction, test_fraction, l2)


def digits_task(seed: int = 0, teacher_fraction: float = 0.5, *, test_fraction: float = 0.25,
                l2: float = 1e-3) -> MultiClassPoolTask:
    """The K = 10 transfer task on the shipped 8x8 digits (see the module docstring).

    Args:
        seed: seed of the splits (test part; teacher part / transfer pool).
        teacher_fraction: share of the non-test images the teacher is fitted
            on (default one half); the rest is the transfer pool.
        test_fraction: share of all images held out as the test part
            (default one quarter).
        l2: L2 penalty of the teacher's multinomial logistic regression.

    Returns:
        ``MultiClassPoolTask`` (d = 64, K = 10) with the pool images, the
        teacher's logits on the pool and test images, and the true labels.
    """
    fit = digits_teacher(seed, teacher_fraction, test_fraction=test_fraction, l2=l2)
    x, y = _digits()
    xp, xt = x[fit.pool_idx], x[fit.test_idx]
    return MultiClassPoolTask(xp, teacher_logits=xp @ fit.w_star.T, test_inputs=xt,
                              test_teacher_logits=xt @ fit.w_star.T, labels=y[fit.pool_idx],
                              test_labels=y[fit.test_idx],
                              label=f"digits8x8(seed={seed},teacher_fraction={teacher_fraction},"
                                    f"test_fraction={test_fraction},l2={l2})")


def mnist_multiclass_teacher(data: DigitData, seed: int = 0, teacher_fraction: float = 0.5, *,
                             l2: float = 1e-3) -> MultiClassTeacherFit:
    """The teacher of ``mnist_multiclass_task`` (indices into ``data.x_train``)."""
    if not isinstance(data, DigitData):
        raise JaxDistillError(f"data must be DigitData (e.g. load_mnist_idx(...)), got {type(data).__name__}")
    seed = check_int("seed", seed, minimum=0)
    teacher_fraction = check_real("teacher_fraction", teacher_fraction, gt=0.0, lt=1.0)
    l2 = check_real("l2", l2, gt=0.0)
    return _split_fit(data.x_train, np.asarray(data.y_train), data.x_test, np.asarray(data.y_test), seed,
                      teacher_fraction, l2)


def mnist_multiclass_task(data: DigitData, seed: int = 0, teacher_fraction: float = 0.5, *,
                          l2: float = 1e-3) -> MultiClassPoolTask:
    """The K = 10 transfer task on ``DigitData`` with all digits (e.g. the full
    MNIST from ``load_mnist_idx``): teacher part and transfer pool split from
    the training images by ``seed``, the test images as test part, true
    labels kept.  Every digit 0-9 must occur in the training images."""
    present = np.unique(np.asarray(data.y_train)) if isinstance(data, DigitData) else None
    if present is not None and len(present) != NUM_DIGIT_CLASSES:
        raise JaxDistillError(f"the data ({data.source}) has training images of digits {present.tolist()} only; "
                              "the K = 10 task needs all ten (mnist01_task takes two)")
    fit = mnist_multiclass_teacher(data, seed, teacher_fraction, l2=l2)
    xp, xt = data.x_train[fit.pool_idx], data.x_test
    return MultiClassPoolTask(xp, teacher_logits=xp @ fit.w_star.T, test_inputs=xt,
                              test_teacher_logits=xt @ fit.w_star.T, labels=np.asarray(data.y_train)[fit.pool_idx],
                              test_labels=np.asarray(data.y_test),
                              label=f"mnist10({data.source},seed={seed},teacher_fraction={teacher_fraction},l2={l2})")


__all__ = ["NUM_DIGIT_CLASSES", "digits_path", "load_digits8x8", "fit_softmax_regression", "MultiClassTeacherFit",
           "digits_teacher", "digits_task", "mnist_multiclass_teacher", "mnist_multiclass_task"]
