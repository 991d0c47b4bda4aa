"""Scalar settings that are traced, not compiled in: one compile per shape.

A task, learner or target setting that does not change an array shape
(kappa, margin, temperature, delta, ...) is declared with
:func:`traced_field`: an ordinary (not static) field holding a Python float.
Outside the runner it stays a Python float (configs, messages, Python-side
maths see the value the user gave).  The runner passes every program
through :func:`lift_traced` just before its one jitted chunk function
(``runner.device_chunk``): each such float becomes a weakly typed 0-d array
of the working precision, i.e. an argument of the compiled chunk, so runs
(and sweep points) that differ only in these values reuse one compiled
program.  Weak typing keeps JAX's promotion exactly as with the Python
float (a float32 run stays float32).

Validation stays where it was: values are checked as Python numbers when
the object is constructed; lifting bypasses ``__init__``/``__post_init__``.

Bits.  XLA rewrites a power with a constant exponent (x ** 2.0 -> x * x,
x ** 3.0 -> x * x * x, x ** 0.5 -> sqrt(x)) and a division by a constant
(x / c -> x * (1 / c)); both differ from the generic operation in the last
bit (measured on jax 0.10.2).  Code that raises to, or divides by, a traced
setting uses :func:`scalar_pow` / :func:`scalar_div`, which take the same
rewrite at run time, so every number is what the compiled-in constant gave.
Functions of a setting that XLA folded at compile time (tan of the margin,
teacher_scale / sqrt(width)) are taken in
Python at construction, as the folding did, and carried as traced fields of
their own.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

TRACED = "jaxdistill_traced"


def traced_field(**kwargs) -> Any:
    """An equinox / dataclass field whose Python float value becomes a traced
    argument of the compiled chunk (module docstring)."""
    metadata = dict(kwargs.pop("metadata", None) or {})
    metadata[TRACED] = True
    return dataclasses.field(metadata=metadata, **kwargs)


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _replace(obj, updates: dict):
    """``obj`` with some fields replaced, bypassing ``__init__`` and the checks
    (the values may be arrays)."""
    if isinstance(obj, eqx.Module):
        names = list(updates)
        return eqx.tree_at(lambda m: [getattr(m, k) for k in names], obj, [updates[k] for k in names])
    new = object.__new__(type(obj))
    for f in dataclasses.fields(obj):
        object.__setattr__(new, f.name, updates.get(f.name, getattr(obj, f.name)))
    return new


def lift_traced(tree):
    """``tree`` with every :func:`traced_field` holding a Python number (in
    any equinox Module or registered dataclass of it) replaced by a weakly
    typed 0-d array; call inside ``precision(dtype)``."""

    def lift(node):
        if not dataclasses.is_dataclass(node) or isinstance(node, type):
            return node
        updates = {}
        for f in dataclasses.fields(node):
            if f.metadata.get("static") or not hasattr(node, f.name):
                continue
            v = getattr(node, f.name)
            if f.metadata.get(TRACED) and _is_number(v):
                updates[f.name] = jax.device_put(float(v))  # weakly typed, working precision; compiles nothing
            elif isinstance(v, (eqx.Module, list, tuple, dict)) or dataclasses.is_dataclass(v):
                new = lift_traced(v)
                if new is not v:
                    updates[f.name] = new
        return _replace(node, updates) if updates else node

    is_node = lambda x: dataclasses.is_dataclass(x) and not isinstance(x, type)
    if is_node(tree):
        return lift(tree)
    leaves, treedef = jax.tree_util.tree_flatten(tree, is_leaf=is_node)
    new = [lift(x) for x in leaves]
    if all(a is b for a, b in zip(new, leaves)):
        return tree
    return jax.tree_util.tree_unflatten(treedef, new)


def scalar_pow(x, p):
    """x ** p for a positive exponent p that may be traced, bit for bit what
    XLA computes when p is a compiled-in constant (module docstring): the
    exponents 1, 2, 3 and 0.5 take XLA's rewrites, every other the
    generic ``pow``."""
    if _is_number(p):
        return x ** p
    return jnp.where(p == 1, x, jnp.where(p == 2, x * x, jnp.where(p == 3, x * x * x,
                     jnp.where(p == 0.5, jnp.sqrt(x), x ** p))))


def scalar_div(x, c):
    """x / c for a scalar c that may be traced, bit for bit what XLA computes
    when c is a compiled-in constant: it compiles x / c into x * (1 / c)
    (module docstring).  A Python number divides as before."""
    if _is_number(c):
        return x / c
    return x * (1.0 / c)


def register_traced_dataclass(cls):
    """Register a frozen dataclass as a pytree whose :func:`traced_field`
    fields are children (the others aux data), unflattened without
    ``__post_init__`` (the children may be tracers)."""
    fields = dataclasses.fields(cls)
    data = tuple(f.name for f in fields if f.metadata.get(TRACED))
    meta = tuple(f.name for f in fields if not f.metadata.get(TRACED))

    def flatten(obj):
        return (tuple(getattr(obj, k) for k in data), tuple(getattr(obj, k) for k in meta))

    def flatten_with_keys(obj):
        return (tuple((jax.tree_util.GetAttrKey(k), getattr(obj, k)) for k in data),
                tuple(getattr(obj, k) for k in meta))

    def unflatten(aux, children):
        new = object.__new__(cls)
        for k, v in zip(meta, aux):
            object.__setattr__(new, k, v)
        for k, v in zip(data, children):
            object.__setattr__(new, k, v)
        return new

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


__all__ = ["TRACED", "traced_field", "lift_traced", "scalar_pow", "scalar_div", "register_traced_dataclass"]
