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
