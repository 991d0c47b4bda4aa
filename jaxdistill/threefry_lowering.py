"""Threefry on the CPU: jaxdistill's programs use JAX's unrolled lowering.

Every random draw of a transfer set (``jax.random`` with the default
threefry keys) is a ``threefry2x32`` hash.  JAX lowers that hash to XLA in
two ways, both its own code and both giving the same bits: the generic rule
writes the 20 rounds out ("unrolled"), the CPU rule wraps 4 rounds in a
5-step loop ("rolled"), which keeps very large programs small.  For the
chunk programs of jaxdistill (a handful of hashes each) the unrolled form is
cheaper both to compile and to run.  Measured on the shared 2-core VM
(``benchmarks/results/threefry-lowering-cpu.md``, both rules in one run):
the closed-form kappa program (d = 50, n = 20, Gram sampler) compiles in
0.63x the time and runs 1.27x the sets/s; the default flow workload
compiles in 0.97x and runs 1.06x.  The per-set outputs are equal bit for
bit (``tests/test_threefry_lowering.py``).

``unrolled_threefry()`` is a context manager: within it, CPU lowerings of
``threefry2x32`` use JAX's generic rule; on exit the CPU rule is restored,
so the caller's own programs are lowered as JAX chooses.  The runner enters
it around the compilation of its chunk programs.  Where the JAX version
keeps its lowering tables elsewhere the context does nothing (``AVAILABLE``
is False) and the programs are lowered with the CPU rule, with the same
numbers.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

_LOCK = threading.Lock()
_DEPTH = 0  # open unrolled_threefry blocks, all threads
_CPU_RULE = None  # JAX's CPU rule while the blocks are open


def _cpu_table_and_primitive():
    """(JAX's table of CPU-specific lowering rules, the threefry2x32
    primitive), or None where this JAX version has neither under these names."""
    try:
        from jax.extend.random import threefry2x32_p
        from jax.interpreters import mlir

        table = mlir._platform_specific_lowerings["cpu"]  # the only private name used
        generic = mlir._lowerings
    except (ImportError, AttributeError, KeyError, TypeError):
        return None
    if threefry2x32_p not in generic:
        return None  # no generic rule to fall back to: leave the CPU rule in place
    return table, threefry2x32_p


_FOUND = _cpu_table_and_primitive()
AVAILABLE: bool = _FOUND is not None


@contextlib.contextmanager
def unrolled_threefry() -> Iterator[None]:
    """Lower ``threefry2x32`` with JAX's generic (unrolled) rule on the CPU
    within the block; reentrant and thread-safe (the CPU rule is removed by
    the first entry and restored by the last exit)."""
    global _DEPTH, _CPU_RULE
    if _FOUND is None:
        yield
        return
    table, prim = _FOUND
    with _LOCK:
        if _DEPTH == 0:
            _CPU_RULE = table.pop(prim, None)
        _DEPTH += 1
    try:
        yield
    finally:
        with _LOCK:
            _DEPTH -= 1
            if _DEPTH == 0 and _CPU_RULE is not None:
                table[prim], _CPU_RULE = _CPU_RULE, None


__all__ = ["AVAILABLE", "unrolled_threefry"]
