"""JAX's two CPU lowerings of the threefry hash, on jaxdistill's chunk programs.

    python -m benchmarks.threefry_lowering OUT.json [--repeats R]

The runner compiles its chunk programs inside
``jaxdistill.threefry_lowering.unrolled_threefry`` (JAX's generic, unrolled
rule); outside it JAX's CPU rule (5 rolled steps) applies.  For each
workload this script runs both, alternating, ``R`` times (default 2): cold
(``jax.clear_caches()`` first), the XLA compile seconds of the chunk program
(``jax_log_compiles``), then the sets/s of a second run once compiled, and
checks that the per-set outputs are equal bit for bit.  It prints the ratio
unrolled / rolled of each measurement (medians over the repeats).

Workloads: the closed form of the kappa x n study (d = 50, n = 20, Gram
sampler, 200,000 sets) and the default flow workload (d = 1000, n = 20, Gram
sampler, 50,000 sets).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import statistics
import time

from .machine import machine_meta

WORKLOADS = {
    "closed_form_d50": dict(d=50, n=20, method="closed-form", num_sets=200_000),
    "flow_d1000": dict(d=1000, n=20, method="flow", num_sets=50_000),
}


class _XlaCompileSeconds(logging.Handler):
    """Sums the seconds of XLA's compilations of ``_compiled_chunk`` that
    jax logs while ``jax_log_compiles`` is on."""

    PATTERN = re.compile(r"Finished XLA compilation of jit\(_compiled_chunk\) in ([0-9.]+) sec")

    def __init__(self):
        super().__init__(level=logging.DEBUG)
        self.seconds = 0.0

    def emit(self, record):
        m = self.PATTERN.search(record.getMessage())
        if m:
            self.seconds += float(m.group(1))


def measure(workload: dict, unrolled: bool) -> tuple[dict, dict]:
    """(timings, per-set arrays of the big run) of one workload under one lowering."""
    import jax

    import jaxdistill as jd
    from jaxdistill import runner
    from jaxdistill.threefry_lowering import unrolled_threefry

    task = jd.KappaPolynomialTask(workload["d"], 1.0)
    saved = runner.unrolled_threefry
    runner.unrolled_threefry = unrolled_threefry if unrolled else contextlib.nullcontext
    handler = _XlaCompileSeconds()
    logger = logging.getLogger("jax")
    old_level = logger.level
    try:
        jax.clear_caches()
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        with jax.log_compiles(True):
            t = time.perf_counter()
            jd.distill(0, task, workload["n"], 1000, method=workload["method"], sampler="gram")
            first_s = time.perf_counter() - t
        logger.removeHandler(handler)
        logger.setLevel(old_level)
        t = time.perf_counter()
        res = jd.distill(1, task, workload["n"], workload["num_sets"], method=workload["method"], sampler="gram")
        run_s = time.perf_counter() - t
    finally:
        runner.unrolled_threefry = saved
        logger.removeHandler(handler)
        logger.setLevel(old_level)
    timings = {"first_call_s": first_s, "xla_compile_s": handler.seconds, "sets_per_s": workload["num_sets"] / run_s,
               "num_failed": int(res.num_sets - res.ok.sum())}
    return timings, res.arrays


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    parser = argparse.ArgumentParser(prog="python -m benchmarks.threefry_lowering", description=__doc__.split("\n\n")[0])
    parser.add_argument("out", metavar="OUT.json", help="where to write the JSON result")
    parser.add_argument("--repeats", type=int, default=2, help="alternating repeats of each lowering (default 2)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")
    result = {"workloads": {}, **machine_meta()}
    for name, workload in WORKLOADS.items():
        runs = {"rolled": [], "unrolled": []}
        arrays = {}
        for _ in range(args.repeats):
            for label in ("rolled", "unrolled"):
                timings, arrays[label] = measure(workload, label == "unrolled")
                runs[label].append(timings)
        equal = all(np.array_equal(arrays["rolled"][k], arrays["unrolled"][k]) for k in arrays["rolled"])
        medians = {label: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for label, rs in runs.items()}
        ratios = {k: medians["unrolled"][k] / medians["rolled"][k] for k in ("xla_compile_s", "first_call_s", "sets_per_s")}
        result["workloads"][name] = {"workload": workload, "runs": runs, "medians": medians,
                                     "ratio_unrolled_to_rolled": ratios, "outputs_equal_bitwise": equal}
        print(f"{name}: XLA compile {medians['rolled']['xla_compile_s']:.2f} -> {medians['unrolled']['xla_compile_s']:.2f} s "
              f"(x{ratios['xla_compile_s']:.2f}), sets/s {medians['rolled']['sets_per_s']:.0f} -> "
              f"{medians['unrolled']['sets_per_s']:.0f} (x{ratios['sets_per_s']:.2f}), outputs equal bit for bit: {equal}")
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
