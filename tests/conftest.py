import os

# Tests exercise the library's own precision handling; nothing here flips
# the global x64 flag.  Keep XLA from grabbing every core in parallel runs.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")


def transfer_sets(task, n, B, seed=0):
    """B transfer sets X [B, n, d] of ``task`` (seed, float64) and their teacher logits [B, n]."""
    import jaxdistill as jd
    from jaxdistill import precision

    with precision():
        X = jd.sample_transfer_sets(seed, task, n, B)
        return X, jd.teacher_logits(X, task.w_star)


import gc

import pytest


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_code():
    """Free JAX's compiled executables after each test module.

    One pytest process compiles thousands of programs; XLA's CPU backend maps
    each executable's code into memory, and a long run hit a segmentation
    fault inside compilation (the process's memory mappings near the kernel's
    vm.max_map_count of 65,530).  Clearing the caches between modules keeps
    the process bounded without changing any result.
    """
    yield
    import jax

    jax.clear_caches()
    gc.collect()
