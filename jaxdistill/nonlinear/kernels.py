"""Kernels k(A, B) -> [m, p] for kernel students (docs/design.md fact 9).

* ``RBFKernel(bandwidth)``: k(x, x') = exp(-||x - x'||^2 / (2 l^2));
* ``ArcCosKernel()``: the order-1 arc-cosine kernel (Cho & Saul 2009),
  k(x, x') = (1/pi) ||x|| ||x'|| (sin t + (pi - t) cos t), t the angle
  between x and x'.  It is 2 E_w[relu(w.x) relu(w.x')] for w ~ N(0, I);
* ``NTKKernel()``: the neural tangent kernel of the bias-free two-layer ReLU
  network f(x) = M^{-1/2} sum_j a_j relu(w_j.x) (a_j, w_j ~ N(0, 1), both
  layers trained): (1/2) arccos(x, x') + x.x' (pi - t) / (2 pi);
* ``UserKernel(fn)``: any function of two batches of inputs.

Every kernel is an equinox Module (a pytree: it passes through ``jit`` and
``vmap`` as part of a learner) with ``config()`` for run records.
"""

from __future__ import annotations

import abc
import math
from typing import Callable, ClassVar, final

import equinox as eqx
import jax.numpy as jnp
from jaxtyping import Array, Float

from ..traced import scalar_div, traced_field
from ..validation import JaxDistillError, check_choice, check_real

KERNEL_NAMES = ("rbf", "arccos", "ntk")


class AbstractKernel(eqx.Module):
    """A positive-definite kernel: ``kernel(A [m, d], B [p, d]) -> [m, p]``."""

    name: eqx.AbstractClassVar[str]

    @abc.abstractmethod
    def __call__(self, A: Float[Array, "m d"], B: Float[Array, "p d"]) -> Float[Array, "m p"]:
        """The kernel matrix between the rows of A and of B."""

    def config(self) -> dict:
        return {"kernel": self.name}


def _norms_and_cos(A, B):
    """(||a_i|| [m, 1], ||b_j|| [1, p], cos of the angle [m, p]); zero rows give cos 0."""
    na = jnp.linalg.norm(A, axis=-1, keepdims=True)
    nb = jnp.linalg.norm(B, axis=-1, keepdims=True).T
    denom = na * nb
    safe = jnp.where(denom > 0, denom, 1.0)
    cos = jnp.where(denom > 0, (A @ B.T) / safe, 0.0)
    return na, nb, jnp.clip(cos, -1.0, 1.0)


def arccos_kernel(A: Float[Array, "m d"], B: Float[Array, "p d"]) -> Float[Array, "m p"]:
    """Order-1 arc-cosine kernel (1/pi) ||a|| ||b|| (sin t + (pi - t) cos t)."""
    na, nb, c = _norms_and_cos(A, B)
    t = jnp.arccos(c)
    s = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
    return (na * nb) * (s + (math.pi - t) * c) / math.pi


def ntk_kernel(A: Float[Array, "m d"], B: Float[Array, "p d"]) -> Float[Array, "m p"]:
    """NTK of the bias-free two-layer ReLU network (both layers trained):
    (1/2) arccos(a, b) + a.b (pi - t) / (2 pi)."""
    _, _, c = _norms_and_cos(A, B)
    t = jnp.arccos(c)
    return 0.5 * arccos_kernel(A, B) + (A @ B.T) * (math.pi - t) / (2.0 * math.pi)


@final
class RBFKernel(AbstractKernel):
    """k(x, x') = exp(-||x - x'||^2 / (2 bandwidth^2)).

    Attributes:
        bandwidth: l > 0, in the units of the inputs.
    """

    bandwidth: float = traced_field()  # a traced argument of the compiled run (jaxdistill.traced)
    name: ClassVar[str] = "rbf"

    def __init__(self, bandwidth: float):
        self.bandwidth = check_real("bandwidth", bandwidth, gt=0.0)

    def __call__(self, A, B):
        sq = (jnp.sum(A * A, axis=-1)[:, None] + jnp.sum(B * B, axis=-1)[None, :] - 2.0 * (A @ B.T))
        return jnp.exp(scalar_div(-jnp.maximum(sq, 0.0), 2.0 * self.bandwidth ** 2))

    def config(self) -> dict:
        return {"kernel": self.name, "bandwidth": self.bandwidth}


@final
class ArcCosKernel(AbstractKernel):
    """The order-1 arc-cosine kernel (module docstring)."""

    name: ClassVar[str] = "arccos"

    def __call__(self, A, B):
        return arccos_kernel(A, B)


@final
class NTKKernel(AbstractKernel):
    """The two-layer ReLU network's neural tangent kernel (module docstring)."""

    name: ClassVar[str] = "ntk"

    def __call__(self, A, B):
        return ntk_kernel(A, B)


@final
class UserKernel(AbstractKernel):
    """Any function ``fn(A [m, d], B [p, d]) -> [m, p]`` (jax-traceable,
    positive definite on the transfer inputs).

    Attributes:
        fn: the kernel function (static: it is part of the compiled program).
        label: a name for run records.
    """

    fn: Callable = eqx.field(static=True)
    label: str = eqx.field(static=True, default="user")
    name: ClassVar[str] = "user"

    def __call__(self, A, B):
        return self.fn(A, B)

    def config(self) -> dict:
        return {"kernel": self.label}


def make_kernel(name: str, *, bandwidth: float | None = None) -> AbstractKernel:
    """The kernel named ``name`` ("rbf", "arccos", "ntk"); ``bandwidth`` is
    required by "rbf" and refused by the others."""
    check_choice("kernel", name, KERNEL_NAMES)
    if name == "rbf":
        if bandwidth is None:
            raise JaxDistillError("kernel 'rbf' needs a bandwidth l > 0 (k = exp(-||x - x'||^2 / (2 l^2)))")
        return RBFKernel(bandwidth)
    if bandwidth is not None:
        raise JaxDistillError(f"bandwidth applies only to kernel 'rbf'; kernel {name!r} has no bandwidth")
    return ArcCosKernel() if name == "arccos" else NTKKernel()


def as_kernel(kernel) -> AbstractKernel:
    """A kernel object from an ``AbstractKernel``, a name or a callable."""
    if isinstance(kernel, AbstractKernel):
        return kernel
    if isinstance(kernel, str):
        return make_kernel(kernel)
    if callable(kernel):
        return UserKernel(kernel, getattr(kernel, "__name__", "user"))
    raise JaxDistillError(f"kernel must be a kernel object, one of {KERNEL_NAMES} or a function of two batches of "
                          f"inputs, got {kernel!r}")


__all__ = ["AbstractKernel", "RBFKernel", "ArcCosKernel", "NTKKernel", "UserKernel", "make_kernel", "as_kernel",
           "arccos_kernel", "ntk_kernel", "KERNEL_NAMES"]
