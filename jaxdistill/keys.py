"""PRNG keys of a run: one key per transfer set, independent of chunking.

Set i (global index) uses ``fold_in(key, i)``, split into a data key (the
transfer set and, for nested sets, the extra input) and a learner key
(random initialisations, w_delta's direction).  So the numbers of set i do
not depend on the chunk size, the number of devices, or on where a resumed
run restarts (docs/design.md, "Data flow").
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Int, PRNGKeyArray

from .validation import JaxDistillError, check_int

TEST_STREAM = 0x7E57
"""fold_in tag of the held-out inputs used for Monte-Carlo risk."""


def as_key(key) -> PRNGKeyArray:
    """An integer seed in [0, 2**63) or a jax PRNG key -> a jax PRNG key."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        check_int("seed", key, minimum=0, maximum=2**63 - 1)
        return jax.random.PRNGKey(int(key))
    if isinstance(key, jax.Array) and jnp.issubdtype(key.dtype, jax.dtypes.prng_key) and key.shape == ():
        return key
    if isinstance(key, (jax.Array, np.ndarray)) and key.shape == (2,) and key.dtype == np.uint32:
        return jnp.asarray(key)
    raise JaxDistillError(
        f"key must be an integer seed >= 0 or a jax.random key (PRNGKey(seed) or jax.random.key(seed)), got {key!r}"
    )


def key_repr(key) -> str:
    """A short JSON-able description of a seed or key (for run manifests)."""
    if isinstance(key, (int, np.integer)):
        return str(int(key))
    data = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return "key:" + ",".join(str(int(v)) for v in np.asarray(data).ravel())


def set_key_pair(key: PRNGKeyArray, index: Int[Array, ""]) -> tuple[PRNGKeyArray, PRNGKeyArray]:
    """(data key, learner key) of set ``index``: split(fold_in(key, index))."""
    k_data, k_learn = jax.random.split(jax.random.fold_in(key, index))
    return k_data, k_learn


def set_keys(key: PRNGKeyArray, indices: Int[Array, " B"]) -> PRNGKeyArray:
    """The key of each set: fold_in(key, global index), [B]."""
    return jax.vmap(lambda i: jax.random.fold_in(key, i))(indices)


def held_out_key(key: PRNGKeyArray) -> PRNGKeyArray:
    """Key of the held-out (test) inputs of a run."""
    return jax.random.fold_in(key, TEST_STREAM)


__all__ = ["TEST_STREAM", "as_key", "key_repr", "set_key_pair", "set_keys", "held_out_key"]
