"""Precision policy.

jaxdistill computes in float64 by default, because the tolerances of the
gradient-flow steady state (1e-6 relative distance to the Thm 1 limit and
below) are out of reach in float32.  It never flips the caller's global
``jax_enable_x64`` flag: every public entry point that computes runs inside
JAX's thread-local ``enable_x64(True)`` context manager, and returns
arrays created inside it.  Outside the library the user's configuration is
untouched.  ``dtype="float32"`` selects single precision (the context is then
``enable_x64(False)``); flows in float32 reach about 1e-4 relative
distance and are marked failed when the requested tolerance is tighter than
float32 can certify (see ``FlowConfig``).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterator, TypeVar

import jax
import jax.numpy as jnp

from .validation import JaxDistillError

# JAX's thread-local x64 switch, through public names only.  jax >= 0.8 has
# ``jax.enable_x64`` (a config state: ``jax.enable_x64(flag)`` is a context
# manager that sets the flag for the current thread and restores the previous
# value on exit).  Before 0.8 the public name is ``jax.experimental.enable_x64``
# (public up to 0.8.x), a thin ``contextmanager`` around the same thread-local
# state, so the semantics are identical.
if hasattr(jax, "enable_x64"):
    _x64_context = jax.enable_x64
else:  # jax < 0.8
    from jax.experimental import enable_x64 as _x64_context

F = TypeVar("F", bound=Callable)

ALLOWED_DTYPES = ("float64", "float32")


def check_dtype(dtype) -> str:
    """Return ``dtype`` as a canonical string ("float64"/"float32") or raise a
    ``JaxDistillError`` (a ValueError) naming it."""
    try:
        name = dtype if isinstance(dtype, str) else jnp.dtype(dtype).name
    except TypeError:
        name = None
    if name not in ALLOWED_DTYPES:
        raise JaxDistillError(f"dtype must be one of {', '.join(ALLOWED_DTYPES)}, got {dtype!r}")
    return name


@contextlib.contextmanager
def precision(dtype: str = "float64") -> Iterator[None]:
    """Context in which jnp arrays default to ``dtype`` (float64 or float32)."""
    name = check_dtype(dtype)
    with _x64_context(name == "float64"):
        yield


def float64(fn: F) -> F:
    """Decorator: run ``fn`` in float64 without touching the global flag."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _x64_context(True):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
