"""Angles between vectors, batched over leading axes.

``signed_angle`` is alpha of eq. 28 (in [0, pi], the sign of u.v counts);
``unsigned_angle`` is alpha-bar of eq. 16 (in [0, pi/2]).  Both use
2 atan2(||u^ - v^||, ||u^ + v^||), accurate for tiny and near-pi angles
where arccos of a cosine loses half the digits.
"""

from __future__ import annotations

import jax.numpy as jnp
from jaxtyping import Array, Float


def signed_angle(u: Float[Array, "... d"], v: Float[Array, "... d"]) -> Float[Array, "..."]:
    """alpha(u, v) = arccos(u.v / (||u|| ||v||)) in [0, pi] (eq. 28)."""
    uh = u / jnp.linalg.norm(u, axis=-1, keepdims=True)
    vh = v / jnp.linalg.norm(v, axis=-1, keepdims=True)
    return 2.0 * jnp.arctan2(jnp.linalg.norm(uh - vh, axis=-1), jnp.linalg.norm(uh + vh, axis=-1))


def unsigned_angle(u: Float[Array, "... d"], v: Float[Array, "... d"]) -> Float[Array, "..."]:
    """alpha-bar(u, v) = arccos(|u.v| / (||u|| ||v||)) in [0, pi/2] (eq. 16)."""
    a = signed_angle(u, v)
    return jnp.minimum(a, jnp.pi - a)
