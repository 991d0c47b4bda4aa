"""Input checks that name the offending parameter and the allowed range.

Every public function calls these before any JAX tracing, so that a bad
argument never surfaces as a traceback from deep inside XLA.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any

import numpy as np

# Docs pages that refusals point at (paths in this repository; tests/test_docs.py checks they exist).
DOCS_HARD_TARGETS = "docs/students.md#hard-targets"
DOCS_CLOSED_FORM = "docs/students.md#where-a-closed-form-exists"
DOCS_OPTIONS = "docs/students.md#options-that-do-not-apply"


class JaxDistillError(ValueError):
    """Base class of the library's input errors (a ValueError)."""


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` must be an integer in [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, (Integral, np.integer)):
        # an integer-valued float is accepted only where floats are exact
        if (not isinstance(value, (bool, np.bool_)) and isinstance(value, (Real, np.floating))
                and float(value).is_integer() and abs(float(value)) <= 2**53):
            value = int(value)
        else:
            raise JaxDistillError(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise JaxDistillError(f"{name} must be an integer{_range_text(minimum, maximum)}, got {value}")
    return value


def check_real(
    name: str,
    value: Any,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float:
    """``value`` must be a finite real number within the given open/closed bounds."""
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError
        v = float(value)
    except (TypeError, ValueError):
        raise JaxDistillError(f"{name} must be a finite real number{_bounds_text(gt, ge, lt, le)}, got {value!r}") from None
    if not math.isfinite(v):
        raise JaxDistillError(f"{name} must be a finite real number{_bounds_text(gt, ge, lt, le)}, got {value!r}")
    bad = (
        (gt is not None and not v > gt)
        or (ge is not None and not v >= ge)
        or (lt is not None and not v < lt)
        or (le is not None and not v <= le)
    )
    if bad:
        raise JaxDistillError(f"{name} must be a finite real number{_bounds_text(gt, ge, lt, le)}, got {v!r}")
    return v


def check_choice(name: str, value: Any, choices: tuple) -> Any:
    if value not in choices:
        raise JaxDistillError(f"{name} must be one of {', '.join(map(str, choices))}; got {value!r}")
    return value


def check_array(
    name: str,
    value: Any,
    *,
    ndim: int | tuple[int, ...],
    shape_text: str,
    allow_zero: bool = False,
) -> np.ndarray:
    """Convert to a float numpy array; check rank, finiteness and non-zero-ness."""
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise JaxDistillError(f"{name} must be a real array of shape {shape_text}, got {type(value).__name__}") from None
    ndims = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in ndims:
        raise JaxDistillError(f"{name} must have shape {shape_text}, got shape {arr.shape}")
    if arr.size == 0:
        raise JaxDistillError(f"{name} must be non-empty with shape {shape_text}, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.sum(~np.isfinite(arr)))
        raise JaxDistillError(f"{name} must be finite; it has {bad} non-finite entries (NaN or inf)")
    if not allow_zero and not np.any(arr):
        raise JaxDistillError(f"{name} must not be all zero")
    return arr


def _range_text(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def _bounds_text(gt, ge, lt, le) -> str:
    parts = []
    if gt is not None:
        parts.append(f"> {gt}")
    if ge is not None:
        parts.append(f">= {ge}")
    if lt is not None:
        parts.append(f"< {lt}")
    if le is not None:
        parts.append(f"<= {le}")
    return (" " + " and ".join(parts)) if parts else ""
