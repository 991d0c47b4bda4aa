"""The study of ``benchmarks.sweep_compiles`` with the code of an
earlier commit (BASE) in the same process: the base commit's ``jaxdistill`` exported as a
package ``jaxdistill_base`` (``git archive BASE jaxdistill``, directory
renamed; the package imports itself relatively) on ``sys.path``.

    python -m benchmarks.sweep_compiles_vs_base DIR_HOLDING_jaxdistill_base OUT.json

Four cold measurements (``jax.clear_caches()`` before each), alternating
old and new so that a change of machine load hits both: the old 12
``distill`` calls, the new sweep, the old sweep, the new 12 calls.  A base
commit from before ``jd.sweep`` (such as 252d332, where a study was the 12
calls) has no old-sweep row.  Wall
seconds and the process's CPU seconds (all threads; less sensitive to other
users of a shared machine).
"""

from __future__ import annotations

import importlib
import json
import sys
import tempfile
import time

from .machine import machine_meta

KAPPAS, NS = (0.5, 2.0), (2, 5, 10, 20, 35, 49)


def main(base_dir: str, out: str) -> None:
    import jax

    sys.path.insert(0, base_dir)
    new = importlib.import_module("jaxdistill")
    old = importlib.import_module("jaxdistill_base")
    from jaxdistill.sweep import CompileCounter

    def calls(jd):
        return [jd.distill(0, jd.KappaPolynomialTask(50, k), n, 1000, method="closed-form").summary()["risk_mean"]
                for k in KAPPAS for n in NS]

    def sweep(jd):
        with tempfile.TemporaryDirectory() as tmp:
            res = jd.sweep(grid={"kappa": list(KAPPAS), "n": list(NS)}, task="kappa", d=50, method="closed-form",
                           num_sets=1000, out=f"{tmp}/s", progress=False)
        return [r["risk_mean"] for r in res.table]

    rows, risks = {}, {}
    measurements = [("old: 12 distill calls", calls, old), ("new: sweep", sweep, new),
                    ("old: sweep", sweep, old), ("new: 12 distill calls", calls, new)]
    for label, fn, jd in measurements:
        if fn is sweep and not hasattr(jd, "sweep"):
            continue  # a base from before jd.sweep: its users wrote the 12 calls
        jax.clear_caches()
        with CompileCounter() as c:
            t, cpu = time.perf_counter(), time.process_time()
            risks[label] = fn(jd)
            rows[label] = {"seconds": round(time.perf_counter() - t, 2),
                           "cpu_seconds": round(time.process_time() - cpu, 2), "compilations": c.count}
        print(label, rows[label], flush=True)
    reference = risks["old: 12 distill calls"]
    result = {"rows": rows, "all_risks_equal_bitwise": all(r == reference for r in risks.values()),
              "max_rel_risk_difference": max(abs(a - b) / abs(b) for r in risks.values() for a, b in zip(r, reference)),
              "speedup_new_sweep_vs_old_calls": rows["old: 12 distill calls"]["seconds"] / rows["new: sweep"]["seconds"],
              "speedup_new_sweep_vs_new_calls": rows["new: 12 distill calls"]["seconds"] / rows["new: sweep"]["seconds"],
              "cpu_speedup_new_sweep_vs_old_calls": rows["old: 12 distill calls"]["cpu_seconds"] /
              rows["new: sweep"]["cpu_seconds"],
              "base_dir": base_dir, **machine_meta()}
    print(json.dumps(result, indent=1))
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
