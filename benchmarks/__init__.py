"""jaxdistill benchmark suite: ``python -m benchmarks [--quick]``.

Every row runs in its own subprocess (so peak memory is that row's own),
on the same machine in the same invocation, and reports sets/s after
compilation, compile time, peak RSS and the accuracy reached
(max over sets of ||w - w_hat|| / ||w_hat||).  Ratios to peers are printed.
"""
