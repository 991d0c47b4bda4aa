"""The shared workload: kappa = 1 task, d = 1000, n = 20, float64."""

from __future__ import annotations

import numpy as np

import jaxdistill as jd
from jaxdistill import precision


def make_sets(num_sets: int, d: int = 1000, n: int = 20, kappa: float = 1.0, seed: int = 0):
    """Transfer sets X [B, n, d] and teacher logits u [B, n] as numpy float64."""
    task = jd.KappaPolynomialTask(d, kappa)
    X = jd.sample_transfer_sets(seed, task, n, num_sets)
    with precision():
        u = jd.teacher_logits(X, task.w_star)
    return task, np.asarray(X), np.asarray(u)


def closed_form_reference(X: np.ndarray, u: np.ndarray) -> np.ndarray:
    """w_hat per set by numpy least squares (independent of the library)."""
    return np.stack([np.linalg.lstsq(X[i], u[i], rcond=None)[0] for i in range(X.shape[0])])


def max_rel_err(W: np.ndarray, W_hat: np.ndarray) -> float:
    return float(np.max(np.linalg.norm(W - W_hat, axis=1) / np.linalg.norm(W_hat, axis=1)))
