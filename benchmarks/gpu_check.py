"""``python -m benchmarks --gpu-check [--out DIR] [--small]``: the accelerator check of issue 14.

Runs on whatever backend JAX finds (GPU, TPU or CPU), in this process:

* the default workload (kappa = 1, d = 1000, n = 20, gradient flow, exact
  risk) with the Gram sampler for 1,000,000 sets;
* the closed form on the same workload for 10,000,000 sets;
* the n = 100 row (flow) for 100,000 sets.

Each row is run once on one chunk to compile, then one more chunk is timed
to estimate the row's time; where 1,000,000 (or 10,000,000) sets would take
longer than ``row_budget_s`` (``--row-budget S``, default: no limit) the row
runs the whole number of chunks that fits and says so (``num_sets_planned``
beside ``num_sets``). The JSON in DIR (default ./benchmark-results) is
rewritten after every row, so a check stopped by a time limit keeps the rows
it finished.
``--small`` (used by tests/test_benchmarks.py on CPU, seconds) runs the same
code at small sizes so the check never goes stale.
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

FULL = [
    ("default workload (flow, gram sampler)", {"method": "flow", "n": 20, "num_sets": 1_000_000}),
    ("closed form (gram sampler)", {"method": "closed-form", "n": 20, "num_sets": 10_000_000}),
    ("n = 100 (flow, gram sampler)", {"method": "flow", "n": 100, "num_sets": 100_000}),
]
SMALL = [
    ("default workload (flow, gram sampler)", {"method": "flow", "n": 20, "num_sets": 512}),
    ("closed form (gram sampler)", {"method": "closed-form", "n": 20, "num_sets": 2048}),
    ("n = 100 (flow, gram sampler)", {"method": "flow", "n": 100, "num_sets": 64}),
]


def run_check(out: str | Path, small: bool = False, d: int = 1000, row_budget_s: float | None = None) -> Path:
    import jax

    import jaxdistill as jd

    if row_budget_s is not None and not row_budget_s > 0:
        raise ValueError(f"row_budget_s must be > 0 seconds, got {row_budget_s}")
    devices = jax.devices()
    meta = {"backend": jax.default_backend(), "devices": [str(dv) for dv in devices],
            "device_kind": devices[0].device_kind, "jax": jax.__version__, "small": small,
            "row_budget_s": row_budget_s, "platform": platform.platform(), "date": time.strftime("%Y-%m-%d")}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"gpu-check-{meta['backend']}{'-small' if small else ''}-{meta['date']}.json"
    rows = []
    task = jd.KappaPolynomialTask(d, 1.0)
    for label, spec in (SMALL if small else FULL):
        B = planned = spec["num_sets"]
        chunk = min(B, 256 if jax.default_backend() == "cpu" else (65_536 if spec["n"] <= 20 else 8192))
        kw = dict(method=spec["method"], keep_students=False, sampler="gram", chunk_size=chunk)
        t0 = time.perf_counter()
        jd.distill(1, task, spec["n"], chunk, **kw)  # compile (one chunk)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        jd.distill(2, task, spec["n"], chunk, **kw)  # one compiled chunk: the row's time estimate
        chunk_s = time.perf_counter() - t0
        if row_budget_s is not None and chunk_s * (B / chunk) > row_budget_s:
            B = max(1, int(row_budget_s // chunk_s)) * chunk
            print(f"[gpu-check] {label}: {planned} sets would take ~{chunk_s * planned / chunk:.0f} s; "
                  f"running {B} (row budget {row_budget_s:.0f} s)", flush=True)
        t0 = time.perf_counter()
        res = jd.distill(0, task, spec["n"], B, **kw)
        el = time.perf_counter() - t0
        s = res.summary()
        rows.append({"label": label, "d": d, "n": spec["n"], "method": spec["method"], "num_sets": B,
                     "num_sets_planned": planned, "chunk_size": chunk, "one_chunk_s": chunk_s, "sets_per_s": B / el, "seconds": el, "compile_s": compile_s,
                     "risk_mean": s["risk_mean"], "risk_se": s["risk_se"], "num_failed": s["num_failed"],
                     "failed_sets": s["failed_sets"][:100],
                     "max_rel_dist_closed_form": s["max_rel_dist_closed_form"]})
        print(f"[gpu-check] {label}: {B / el:,.0f} sets/s ({B} sets, {el:.1f} s, compile {compile_s:.1f} s)", flush=True)
        path.write_text(json.dumps({"meta": meta, "rows": rows,
                                    "target": "default workload >= 100,000 sets/s on one H200-class GPU"},
                                   indent=2) + "\n")
    print(f"[gpu-check] written {path}")
    return path
