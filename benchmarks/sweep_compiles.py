"""One compile per shape: the kappa x n study (kappa in {0.5, 2} x n in {2, 5, 10, 20, 35, 49}) as one sweep
and as 12 separate ``jd.distill`` calls, in one process.

    python -m benchmarks.sweep_compiles OUT.json

The study: kappa in {0.5, 2} x n in {2, 5, 10, 20, 35, 49}, d = 50, closed
form, the default sampler ("auto": Gram), 1,000 sets a point.  First the
sweep (``jaxdistill sweep ... --out DIR``, cold: nothing compiled yet), then
``jax.clear_caches()`` and the 12 calls, each timed with the XLA
compilations counted (``sweep.CompileCounter``); then the 12 calls again
with the sweep's programs still compiled (the calls reuse them).  Last,
from the command line, each command a new process (start-up, imports and
compilations included, as a user running them one by one): the sweep
against the 12 ``jaxdistill run`` commands of its points; then the 12 commands
again sharing JAX's persistent compilation cache (``JAX_COMPILATION_CACHE_DIR``,
empty at the start, every program cached), and the sweep once more in a new
process with that cache warm, as a resumed or repeated sweep would start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from .machine import machine_meta


def _process_seconds(args: list[str], cache_dir: str | None = None) -> float:
    """Wall seconds of ``jaxdistill ARGS`` in a new process; with ``cache_dir``, the
    process uses JAX's persistent compilation cache there for every program."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_COMPILATION_CACHE", "JAX_PERSISTENT_CACHE"))}
    if cache_dir is not None:
        env.update(JAX_COMPILATION_CACHE_DIR=cache_dir, JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0")
    t = time.perf_counter()
    subprocess.run([sys.executable, "-m", "jaxdistill", *args], check=True, capture_output=True, env=env)
    return time.perf_counter() - t


def main(out: str) -> None:
    import jax

    import jaxdistill as jd
    from jaxdistill.cli import main as cli
    from jaxdistill.sweep import CompileCounter

    kappas, ns = (0.5, 2.0), (2, 5, 10, 20, 35, 49)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["sweep", "--task", "kappa", "--d", "50", "--method", "closed-form", "--num-sets", "1000",
               "--grid", "kappa=0.5,2", "--grid", "n=2,5,10,20,35,49", "--quiet", "--out", f"{tmp}/study"]
        with CompileCounter() as c:
            t = time.perf_counter()
            assert cli(cmd) == 0
            rows["sweep"] = {"seconds": time.perf_counter() - t, "compilations": c.count}
        info = json.loads(open(f"{tmp}/study/sweep.json").read())
        rows["sweep"]["compilations_in_sweep_json"] = info["compilations"]
        table = info["table"]

    def calls(label):
        with CompileCounter() as c:
            t = time.perf_counter()
            risks = [jd.distill(0, jd.KappaPolynomialTask(50, k), n, 1000, method="closed-form").summary()["risk_mean"]
                     for k in kappas for n in ns]
            rows[label] = {"seconds": time.perf_counter() - t, "compilations": c.count}
        return risks

    jax.clear_caches()
    risks = calls("12 distill calls, caches cleared")
    calls("12 distill calls, after the sweep (compiled programs reused)")

    def run_commands(tmp, cache_dir=None):
        return sum(_process_seconds(["run", "--task", "kappa", "--d", "50", "--method", "closed-form", "--num-sets",
                                     "1000", "--kappa", str(k), "--n", str(n), "--quiet", "--out",
                                     f"{tmp}/run-{k}-{n}-{cache_dir is not None}"], cache_dir)
                   for k in kappas for n in ns)

    with tempfile.TemporaryDirectory() as tmp:
        rows["sweep, one process"] = {"seconds": _process_seconds(cmd[:-1] + [f"{tmp}/cli-study"])}
        rows["12 run commands, one process each"] = {"seconds": run_commands(tmp)}
        cache = f"{tmp}/xla-cache"
        rows["12 run commands, one process each, one persistent compilation cache (empty at the start)"] = {
            "seconds": run_commands(tmp, cache)}
        rows["sweep, one process, that cache warm"] = {
            "seconds": _process_seconds(cmd[:-1] + [f"{tmp}/cli-study-cached"], cache)}
        cached = jd.load_sweep(f"{tmp}/cli-study-cached").info
        rows["sweep, one process, that cache warm"].update(
            compilations_in_sweep_json=cached["compilations"],
            programs_loaded_from_cache=cached["programs_loaded_from_cache"])
    same = risks == [r["risk_mean"] for r in table]
    result = {"study": " ".join(cmd[:-2]), "rows": rows, "sweep_rows_equal_distill_bitwise": same,
              "speedup_sweep_vs_cold_calls": rows["12 distill calls, caches cleared"]["seconds"] / rows["sweep"]["seconds"],
              "speedup_sweep_vs_run_commands": (rows["12 run commands, one process each"]["seconds"]
                                                / rows["sweep, one process"]["seconds"]),
              "jaxdistill": getattr(jd, "__version__", "?"), **machine_meta()}
    print(json.dumps(result, indent=1))
    with open(out, "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main(sys.argv[1])
