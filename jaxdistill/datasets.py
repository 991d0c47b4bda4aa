"""Real data: the MNIST digits 0/1 task of section 5.2 (Fig. 4).

Shipped data: ``jaxdistill/data/mnist01.npz`` holds every image of digit 0
or 1 of the original MNIST training (12,665) and test (2,115) sets, pixels
0-255 (see ``data/MNIST01_README.md``: MNIST by LeCun, Cortes and Burges,
CC BY-SA 3.0; the subset is shared under the same license).

Inputs are the images as vectors in R^784 with pixels scaled to [0, 1]
(x / 255), no centring, so the teacher's decision boundary passes through
the origin as in the paper's linear setting.

The task (``mnist01_task``):

1. the training images are split by a seeded permutation into a *teacher
   part* (``teacher_fraction`` of them; the paper's "independent training
   set") and the *transfer pool* (the rest);
2. the teacher w* is a logistic regression without bias, trained on the
   teacher part with labels 1{digit == 1} by L-BFGS (plus Newton polish)
   to the minimiser of mean cross-entropy + (l2 / 2) ||w||^2.  The small L2 penalty
   (default 1e-3) keeps the problem strictly convex and the teacher's logits
   moderate (|w*.x| of order 10 rather than growing without bound on this
   separable data), so soft labels sigma(w*.x) are informative;
3. transfer sets are drawn without replacement from the pool; the transfer
   risk is the disagreement with the teacher on the test images.

A user with the full MNIST in IDX files (``train-images-idx3-ubyte[.gz]``
etc.) loads it with ``load_mnist_idx`` and passes it as ``data=`` to
``mnist01_task``: the same code path (checks, scaling, split, teacher).
"""

from __future__ import annotations

import functools
import gzip
import math
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from .tasks import PoolTask
from .validation import JaxDistillError, check_int, check_real

IMAGE_MAGIC = 2051
LABEL_MAGIC = 2049
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"), 0x0D: np.dtype(">f4"),
               0x0E: np.dtype(">f8")}
NUM_PIXELS = 784


@dataclass(frozen=True)
class DigitData:
    """Images as float64 vectors in [0, 1] and digit labels.

    Attributes:
        x_train: [N, 784]; y_train: [N] digit labels (ints).
        x_test: [M, 784]; y_test: [M].
        source: where the data came from.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str


def default_path() -> Path:
    """The shipped ``mnist01.npz``."""
    return Path(str(resources.files("jaxdistill") / "data" / "mnist01.npz"))


# ---------------------------------------------------------------- IDX files

def _read_bytes(path) -> bytes:
    path = Path(path)
    if not path.exists():
        raise JaxDistillError(f"IDX file {path} does not exist")
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":  # gzip
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise JaxDistillError(f"IDX file {path} is a corrupt or truncated gzip file ({e})") from None
    return raw


def load_idx(path, *, expect_magic: int | None = None) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into a numpy array.

    Checks the header (two zero bytes, a known type code, the number of
    dimensions; ``expect_magic`` 2051 for images, 2049 for labels) and that
    the payload has exactly the size the header announces.

    Raises:
        JaxDistillError naming the file and what is wrong.
    """
    raw = _read_bytes(path)
    if len(raw) < 4:
        raise JaxDistillError(f"IDX file {path} is truncated: {len(raw)} bytes, shorter than the 4-byte magic number")
    magic = int.from_bytes(raw[:4], "big")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise JaxDistillError(f"{path} is not an IDX file: bad magic number 0x{magic:08x}")
    if expect_magic is not None and magic != expect_magic:
        kind = {IMAGE_MAGIC: "images", LABEL_MAGIC: "labels"}.get(expect_magic, str(expect_magic))
        raise JaxDistillError(f"{path}: magic number {magic} is not {expect_magic} ({kind})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise JaxDistillError(f"IDX file {path} is truncated in its header ({len(raw)} bytes, {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + math.prod(shape) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise JaxDistillError(
            f"IDX file {path} is {what}: header announces shape {shape} ({expected} bytes), file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def load_mnist_idx(train_images, train_labels, test_images, test_labels) -> DigitData:
    """Full MNIST (or any IDX data set of 28x28 images) from the user's files.

    Args: the four IDX paths (raw or .gz), as published at yann.lecun.com.

    Returns:
        ``DigitData`` with all digits; ``mnist01_task(data=...)`` keeps the two
        requested digits.
    """
    arrays = [
        load_idx(train_images, expect_magic=IMAGE_MAGIC),
        load_idx(train_labels, expect_magic=LABEL_MAGIC),
        load_idx(test_images, expect_magic=IMAGE_MAGIC),
        load_idx(test_labels, expect_magic=LABEL_MAGIC),
    ]
    for a, p in ((arrays[0], train_images), (arrays[2], test_images)):
        if a.ndim != 3 or a.shape[1:] != (28, 28):
            raise JaxDistillError(f"{p}: images must have shape [N, 28, 28], got {a.shape}")
    return _prepare(arrays[0].reshape(len(arrays[0]), -1), arrays[1], arrays[2].reshape(len(arrays[2]), -1), arrays[3],
                    source=str(train_images))


# ---------------------------------------------------------------- shipped npz

def read_npz(path: Path, required: tuple[str, ...], *, what: str) -> dict[str, np.ndarray]:
    """The arrays of an .npz file (no pickles), with clear errors for a missing,
    corrupt or truncated file and for missing arrays (``what`` names the file's role)."""
    if not path.exists():
        raise JaxDistillError(f"{what} {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:
        raise JaxDistillError(f"{what} {path} is corrupt or truncated ({type(e).__name__}: {e})") from None
    missing = [k for k in required if k not in arrays]
    if missing:
        raise JaxDistillError(f"{what} {path} lacks arrays {', '.join(missing)} (found: {', '.join(arrays) or 'none'})")
    return arrays


def load_mnist01(path=None) -> DigitData:
    """The shipped MNIST 0/1 subset (or an .npz of the same layout at ``path``).

    The file must hold uint8 arrays x_train [N, 784], y_train [N],
    x_test [M, 784], y_test [M].
    """
    path = Path(path) if path is not None else default_path()
    arrays = read_npz(path, ("x_train", "y_train", "x_test", "y_test"), what="MNIST file")
    return _prepare(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"], source=str(path))


def _prepare(x_train, y_train, x_test, y_test, *, source: str) -> DigitData:
    """Shared checks and scaling of every loader: pixels / 255 in R^784."""
    out = []
    for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x = np.asarray(x)
        y = np.asarray(y)
        if x.ndim != 2 or x.shape[1] != NUM_PIXELS:
            raise JaxDistillError(f"{source}: {name} images must have shape [N, {NUM_PIXELS}], got {x.shape}")
        if y.shape != (x.shape[0],):
            raise JaxDistillError(f"{source}: {name} labels must have shape [{x.shape[0]}], got {y.shape}")
        if x.dtype != np.uint8:
            raise JaxDistillError(f"{source}: {name} images must be uint8 pixels 0-255, got dtype {x.dtype}")
        if y.size and (y.min() < 0 or y.max() > 9):
            raise JaxDistillError(f"{source}: {name} labels must be digits 0-9, got range [{y.min()}, {y.max()}]")
        out += [x.astype(np.float64) / 255.0, y.astype(np.int64)]
    return DigitData(*out, source=source)


# ---------------------------------------------------------------- teacher and task

@dataclass(frozen=True)
class TeacherFit:
    """The MNIST teacher and its split.

    Attributes:
        w_star: [784] logistic-regression weights (no bias).
        teacher_idx, pool_idx: indices into the training images.
        train_accuracy: on the teacher part; test_accuracy: on the test images
            (against the true digit labels).
        l2: the L2 penalty; newton_iters: optimiser iterations; grad_norm: final
            gradient norm of the penalised objective.
    """

    w_star: np.ndarray
    teacher_idx: np.ndarray
    pool_idx: np.ndarray
    train_accuracy: float
    test_accuracy: float
    l2: float
    newton_iters: int
    grad_norm: float


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float, *, tol: float = 1e-9, max_iter: int = 5000) -> tuple[np.ndarray, int, float]:
    """argmin_w mean_i [softplus(w.x_i) - y_i w.x_i] + l2/2 ||w||^2 (strictly
    convex for l2 > 0), by L-BFGS (scipy) from w = 0 to a gradient norm of
    about 1e-10, then Newton steps while the gradient norm exceeds ``tol``.

    Returns (w, iterations, final gradient norm)."""
    from scipy.optimize import minimize

    n, d = X.shape

    def fg(w):
        z = X @ w
        p = 0.5 * (1.0 + np.tanh(0.5 * z))
        return float(np.mean(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * w @ w), X.T @ (p - y) / n + l2 * w

    res = minimize(fg, np.zeros(d), jac=True, method="L-BFGS-B",
                   options={"gtol": 1e-12, "ftol": 1e-16, "maxiter": max_iter, "maxcor": 30})
    w, iters = res.x, int(res.nit)
    for _ in range(5):
        g = fg(w)[1]
        if np.linalg.norm(g) <= tol:
            break
        p = 0.5 * (1.0 + np.tanh(0.5 * (X @ w)))
        H = (X.T * (p * (1 - p))) @ X / n + l2 * np.eye(d)
        w = w - np.linalg.solve(H, g)
        iters += 1
    return w, iters, float(np.linalg.norm(fg(w)[1]))


def _binary(data: DigitData, digits: tuple[int, int]):
    """The images of the two ``digits`` (label 1 = the second), after checking
    that they are two different digits with training and test images each."""
    if len(tuple(digits)) != 2:
        raise JaxDistillError(f"digits must be a pair of two different digits (a, b), got {digits!r}")
    a, b = (check_int("digits", v, minimum=0, maximum=9) for v in digits)
    if a == b:
        raise JaxDistillError(f"digits must be two different digits, got ({a}, {b})")
    for digit in (a, b):
        for split, y in (("training", data.y_train), ("test", data.y_test)):
            if not (y == digit).any():
                present = ", ".join(str(int(v)) for v in np.unique(np.concatenate([data.y_train, data.y_test])))
                raise JaxDistillError(f"digits: the data ({data.source}) has no {split} images of digit {digit} "
                                      f"(it has digits {present}); got digits ({a}, {b})")
    tr = (data.y_train == a) | (data.y_train == b)
    te = (data.y_test == a) | (data.y_test == b)
    return (data.x_train[tr], (data.y_train[tr] == b).astype(np.float64),
            data.x_test[te], (data.y_test[te] == b).astype(np.float64))


def mnist01_teacher(seed: int = 0, teacher_fraction: float = 0.5, *, l2: float = 1e-3, data: DigitData | None = None,
                    digits: tuple[int, int] = (0, 1)) -> TeacherFit:
    """Train the teacher of ``mnist01_task`` (see the module docstring)."""
    seed = check_int("seed", seed, minimum=0)
    teacher_fraction = check_real("teacher_fraction", teacher_fraction, gt=0.0, lt=1.0)
    l2 = check_real("l2", l2, gt=0.0)
    if data is None:
        return _teacher_cached(seed, teacher_fraction, l2, tuple(digits))
    return _teacher(data, seed, teacher_fraction, l2, tuple(digits))


def _teacher(data: DigitData, seed, teacher_fraction, l2, digits) -> TeacherFit:
    xtr, ytr, xte, yte = _binary(data, digits)
    perm = np.random.default_rng(seed).permutation(len(xtr))
    k = int(round(teacher_fraction * len(xtr)))
    if k < 1 or k >= len(xtr):
        raise JaxDistillError(f"teacher_fraction {teacher_fraction} leaves an empty teacher part or pool ({len(xtr)} images)")
    t_idx, p_idx = np.sort(perm[:k]), np.sort(perm[k:])
    w, iters, gn = fit_logistic(xtr[t_idx], ytr[t_idx], l2)
    acc = lambda X, y: float(np.mean(((X @ w) >= 0) == (y > 0.5)))
    return TeacherFit(w, t_idx, p_idx, acc(xtr[t_idx], ytr[t_idx]), acc(xte, yte), l2, iters, gn)


@functools.lru_cache(maxsize=8)
def _teacher_cached(seed, teacher_fraction, l2, digits) -> TeacherFit:
    return _teacher(_shipped(), seed, teacher_fraction, l2, digits)


@functools.lru_cache(maxsize=1)
def _shipped() -> DigitData:
    return load_mnist01()


def mnist01_task(seed: int = 0, teacher_fraction: float = 0.5, *, l2: float = 1e-3, data: DigitData | None = None,
                 digits: tuple[int, int] = (0, 1)) -> PoolTask:
    """The MNIST 0/1 transfer task of section 5.2 (Fig. 4).

    Args:
        seed: seed of the split of the training images into teacher part and
            transfer pool.
        teacher_fraction: share of the training images the teacher is trained
            on (default one half); the rest is the transfer pool.
        l2: L2 penalty of the teacher's logistic regression (default 1e-3).
        data: ``DigitData`` to use instead of the shipped subset (e.g.
            ``load_mnist_idx(...)`` of the full MNIST).
        digits: the two digits (label 1 = the second).

    Returns:
        ``PoolTask`` with inputs = the pool images [P, 784], w_star = the
        teacher, test_inputs = the test images of the two digits.
    """
    fit = mnist01_teacher(seed, teacher_fraction, l2=l2, data=data, digits=digits)
    d = data if data is not None else _shipped()
    xtr, _, xte, _ = _binary(d, tuple(digits))
    return PoolTask(xtr[fit.pool_idx], fit.w_star, test_inputs=xte,
                    label=f"mnist{digits[0]}{digits[1]}(seed={seed},teacher_fraction={teacher_fraction},l2={l2})")
