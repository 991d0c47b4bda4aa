"""Run the benchmark suite from a checkout of the repository (the suite is
not installed with the package): ``python -m benchmarks [--quick] [--only ROW ...]
[--out FOLDER]``.

Writes FOLDER/<machine>-<date>.json (default FOLDER: ./benchmark-results, under
the current directory), a Markdown table (.md) and a PNG of the scaling curves
(.png), and prints the table with ratios to the peers, all measured in this one
run on this machine.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import inspect
import json
import math
import os
import platform
import subprocess
import sys
from pathlib import Path

from .machine import machine_meta

RESULTS = "benchmark-results"  # default output folder, relative to the current directory


def plan(quick: bool) -> list[tuple[str, str, dict]]:
    """(label, row, kwargs) in execution order."""
    if quick:
        rows = [
            ("jaxdistill flow", "flow", {"B": 200}),
            ("jaxdistill distill (end to end)", "distill", {"B": 400, "chunk_size": 200}),
            ("closed form, batched QR (JAX)", "closed_form", {"B": 200}),
            ("closed form, batched QR (numpy)", "numpy_qr", {"B": 200}),
            ("scipy solve_ivp LSODA loop", "scipy_lsoda", {"B": 1, "t_end": 1e4}),
            ("scikit-learn LogisticRegression loop", "sklearn", {"B": 5}),
            ("naive diffrax Tsit5, d-dim, vmapped", "naive_diffrax", {"B": 2, "max_steps": 2000}),
            ("diffrax Kvaerno5 (implicit), d-dim, vmapped", "naive_diffrax", {"B": 1, "max_steps": 500,
                                                                              "solver": "Kvaerno5"}),
            ("jaxdistill flow, plain d-dim coordinates", "flow", {"B": 2, "coordinates": "plain"}),
            ("scipy solve_ivp BDF loop (rtol 1e-8)", "scipy_lsoda", {"B": 1, "t_end": 1e4, "method": "BDF",
                                                                     "rtol": 1e-8, "atol": 1e-10}),
            ("optax GD, d-dim, batched", "optax_gd", {"B": 50, "steps": 2000}),
            ("exact risk", "risk_exact", {"B": 200}),
            ("Monte-Carlo risk (10,000 points)", "risk_mc", {"B": 200}),
            ("deep N=2 reduced", "deep", {"B": 20, "depth": 2, "integrator": "reduced", "d": 100}),
            ("deep N=2 full (width 64)", "deep", {"B": 4, "depth": 2, "integrator": "full", "d": 100,
                                                  "solver": "Tsit5", "max_steps": 20_000}),
            ("memory: distill B=5,000", "memory", {"B": 5000}),
            ("numpy pipeline: sample + QR", "numpy_pipeline", {"B": 200}),
            ("jaxdistill run, flow, inputs sampler", "run", {"B": 600, "B0": 100, "sampler": "inputs"}),
            ("jaxdistill run, flow, gram sampler", "run", {"B": 3000, "B0": 300, "sampler": "gram"}),
            ("jaxdistill run, closed form, gram sampler", "run",
             {"B": 20000, "B0": 2000, "method": "closed-form", "sampler": "gram"}),
            ("jaxdistill run, flow, gram, d=1e6", "run", {"B": 3000, "B0": 300, "sampler": "gram", "d": 10**6}),
            ("profile of jaxdistill run (flow, gram)", "profile", {"B": 1024, "B0": 256}),
            ("kernel student (rbf), flow, d=10 n=40", "kernel", {"B": 256}),
            ("kernel student (rbf), closed form, d=10 n=40", "kernel", {"B": 256, "method": "closed-form"}),
            ("kernel student (rbf), flow, Kvaerno3 (previous default)", "kernel", {"B": 256, "solver": "Kvaerno3"}),
            ("jaxdistill flow, Kvaerno3 (previous default)", "flow", {"B": 200, "solver": "Kvaerno3"}),
            ("sweep of 4 points vs one run", "sweep", {"kappas": [0.5, 2.0], "ns": [10, 30], "d": 100,
                                                       "num_sets": 100}),
            ("K-class flow, digits K=10 d=64, n=20", "kclass", {"B": 256, "n": 20}),
        ]
        scaling = [(d, n, s, 100) for d in (100, 1000) for n in (5, 20) for s in SAMPLERS]
    else:
        rows = [
            ("jaxdistill flow (one batch of 1000)", "flow", {"B": 1000}),
            ("jaxdistill flow (batch of 250)", "flow", {"B": 250}),
            ("jaxdistill flow B=4000 (linearity)", "flow", {"B": 4000}),
            ("jaxdistill distill (end to end)", "distill", {"B": 10_000}),
            ("closed form, batched QR (JAX)", "closed_form", {"B": 1000}),
            ("closed form, batched QR (numpy)", "numpy_qr", {"B": 1000}),
            ("scipy solve_ivp LSODA loop", "scipy_lsoda", {"B": 3, "t_end": 1e6}),
            ("scikit-learn LogisticRegression loop", "sklearn", {"B": 50}),
            ("naive diffrax Tsit5, d-dim, vmapped", "naive_diffrax", {"B": 4, "max_steps": 20_000}),
            ("diffrax Kvaerno5 (implicit), d-dim, vmapped", "naive_diffrax", {"B": 2, "max_steps": 5000,
                                                                              "solver": "Kvaerno5"}),
            ("jaxdistill flow, plain d-dim coordinates", "flow", {"B": 10, "coordinates": "plain"}),
            ("scipy solve_ivp BDF loop (rtol 1e-8)", "scipy_lsoda", {"B": 3, "t_end": 1e6, "method": "BDF",
                                                                     "rtol": 1e-8, "atol": 1e-10}),
            ("optax GD, d-dim, batched", "optax_gd", {"B": 200, "steps": 20_000}),
            ("exact risk", "risk_exact", {"B": 1000}),
            ("Monte-Carlo risk (10,000 points)", "risk_mc", {"B": 1000}),
            ("deep N=2 reduced", "deep", {"B": 1000, "depth": 2, "integrator": "reduced", "d": 100}),
            ("deep N=2 full (width 64)", "deep", {"B": 2, "depth": 2, "integrator": "full", "d": 100,
                                                  "solver": "Tsit5", "max_steps": 20_000}),
            ("deep N=3 reduced", "deep", {"B": 1000, "depth": 3, "integrator": "reduced", "d": 100}),
            ("deep N=3 full (width 64)", "deep", {"B": 2, "depth": 3, "integrator": "full", "d": 100,
                                                  "solver": "Tsit5", "max_steps": 20_000}),
            ("memory: distill B=100,000", "memory", {"B": 100_000}),
            ("memory: distill B=100,000, gram sampler", "memory", {"B": 100_000, "sampler": "gram"}),
            ("numpy pipeline: sample + QR", "numpy_pipeline", {"B": 2000}),
            ("numpy pipeline: sample + QR, n=100", "numpy_pipeline", {"B": 500, "n": 100}),
            ("jaxdistill run, flow, inputs sampler", "run", {"B": 5000, "B0": 500, "sampler": "inputs"}),
            ("jaxdistill run, flow, gram sampler", "run", {"B": 100_000, "B0": 10_000, "sampler": "gram"}),
            ("jaxdistill run, closed form, gram sampler", "run",
             {"B": 1_000_000, "B0": 100_000, "method": "closed-form", "sampler": "gram"}),
            ("jaxdistill run, flow, gram, n=100", "run", {"B": 2000, "B0": 200, "sampler": "gram", "n": 100}),
            ("jaxdistill run, flow, gram, d=1e6", "run", {"B": 100_000, "B0": 10_000, "sampler": "gram", "d": 10**6}),
            ("profile of jaxdistill run (flow, gram)", "profile", {"B": 20000, "B0": 2000}),
            ("kernel student (rbf), flow, d=10 n=40", "kernel", {"B": 2048}),
            ("kernel student (ntk), flow, d=10 n=40", "kernel", {"B": 2048, "kernel": "ntk"}),
            ("kernel student (rbf), closed form, d=10 n=40", "kernel", {"B": 2048, "method": "closed-form"}),
            ("kernel student (rbf), flow, Kvaerno3 (previous default)", "kernel", {"B": 2048, "solver": "Kvaerno3"}),
            ("kernel student (rbf), flow, one batch of 2048", "kernel", {"B": 2048, "chunk": 2048}),
            ("jaxdistill flow, Kvaerno3 (previous default)", "flow", {"B": 1000, "solver": "Kvaerno3"}),
            ("sweep of 50 points (kappa x n) vs one run", "sweep", {}),
            ("K-class flow, digits K=10 d=64, n=20", "kclass", {"B": 2048, "n": 20}),
            ("K-class closed form, digits K=10 d=64, n=20", "kclass", {"B": 2048, "n": 20, "method": "closed-form"}),
            # n = 100 > d: every digits set of 100 images has rank < 64 (3 pixels are 0 in every image), so
            # each flow is rank-deficient and runs to its step limit: capped here to measure a rate at all
            ("K-class flow, digits K=10 d=64, n=100 (rank-deficient, max_steps 64)", "kclass",
             {"B": 16, "n": 100, "chunk": 16, "max_steps": 64}),
        ]
        scaling = [(d, n, s, scaling_sets(d, n, s)) for s in SAMPLERS for n in SCALING_N for d in SCALING_D
                   if n < d and (s == "gram" or n * d <= INPUTS_MAX_ND)]
    rows += [(f"scaling {s} d={d} n={n}", "scaling", {"B": B, "d": d, "n": n, "sampler": s}) for d, n, s, B in scaling]
    return rows


SAMPLERS = ("gram", "inputs")
SCALING_D = (100, 1000, 10_000, 100_000, 1_000_000)
SCALING_N = (5, 20, 100, 200)
INPUTS_MAX_ND = 2 * 10**7
"""The inputs sampler's scaling points stop at n * d = 2e7 (160 MB of inputs per set)."""


def scaling_sets(d: int, n: int, sampler: str) -> int:
    """Sets per scaling point: a few seconds of work each on a 2-core CPU."""
    B = {5: 4096, 20: 2048, 100: 256, 200: 64}[n]
    return B if sampler == "gram" else max(8, min(B, 4 * 10**8 // (n * d)))


def run_row(row: str, kwargs: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.rows", row, json.dumps(kwargs)]
    env = dict(os.environ)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(Path(__file__).resolve().parent.parent))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    for line in proc.stdout.splitlines():
        if line.startswith("BENCHROW "):
            return json.loads(line[len("BENCHROW "):])
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
    return {"error": tail[0][:300]}


def fmt(v, spec=".3g"):
    if v is None:
        return "-"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


def table(results: list[dict]) -> str:
    flow = next((r for r in results if r["row"] == "flow" and "sets_per_s" in r), None)  # the first flow row
    cf = next((r for r in results if r["row"] == "closed_form" and "sets_per_s" in r), None)
    lines = ["| benchmark | sets/s | compile s | peak RSS MB | max rel. err | sets | flow speed-up vs this | note |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['label']} | error: {r['error']} | | | | | | |")
            continue
        ratio = flow["sets_per_s"] / r["sets_per_s"] if flow and r.get("sets_per_s") else None
        note = r.get("note", "")
        if r.get("failed"):
            note = (note + f"; {r['failed']} failed").strip("; ")
        if r.get("max_dist_w_hat") is not None:
            note = (note + f"; max ||w-w_hat||={r['max_dist_w_hat']:.2e}").strip("; ")
        lines.append(f"| {r['label']} | {fmt(r.get('sets_per_s'))} | {fmt(r.get('compile_s'), '.2f')} | "
                     f"{fmt(r.get('peak_rss_mb'), '.0f')} | {fmt(r.get('max_rel_err'), '.1e')} | {r.get('num_sets')} | "
                     f"{fmt(ratio, '.3g')}x | {note} |")
    if flow and cf:
        lines.append("")
        lines.append(f"Flow / closed form (the floor): {flow['sets_per_s'] / cf['sets_per_s']:.2f} of its speed.")
    deep = {}
    for r in results:
        if r["row"] == "deep" and "sets_per_s" in r:
            deep[r["label"]] = r["sets_per_s"]
    for N in (2, 3):
        red = deep.get(f"deep N={N} reduced")
        full = deep.get(f"deep N={N} full (width 64)")
        if red and full:
            lines.append(f"Deep N={N}: reduced flow is {red / full:.0f}x faster than the full parameterisation.")
    npp = {r["n"]: r for r in results if r["row"] == "numpy_pipeline" and "sets_per_s" in r}
    runs = {r["label"]: r for r in results if r["row"] == "run" and "sets_per_s" in r}
    for label, r in runs.items():
        if r["n"] in npp and r["d"] == 1000:  # the peer at the same n and d
            lines.append(f"{label}: {r['sets_per_s'] / npp[r['n']]['sets_per_s']:.1f}x the numpy sample+QR pipeline "
                         f"(n = {r['n']}).")
    g1k, g1m = runs.get("jaxdistill run, flow, gram sampler"), runs.get("jaxdistill run, flow, gram, d=1e6")
    if g1k and g1m:
        lines.append(f"Cost independent of d: run at d=1e6 is {g1m['sets_per_s'] / g1k['sets_per_s']:.2f}x "
                     "its throughput at d=1000 (gram sampler, n=20).")
    kflow = next((r for r in results if r["row"] == "kernel" and "flow" in r["label"] and "sets_per_s" in r), None)
    kcf = next((r for r in results if r["row"] == "kernel" and "closed form" in r["label"] and "sets_per_s" in r), None)
    if kflow and kcf:
        lines.append(f"Kernel students (d=10, n=40): the flow runs {kflow['sets_per_s']:.0f} sets/s, "
                     f"{kflow['sets_per_s'] / kcf['sets_per_s']:.3f} of the closed-form interpolant's speed "
                     f"(target >= 1,000 sets/s).")
    for row, first in (("flow", flow), ("kernel", kflow)):
        old_solver = next((r for r in results if r["row"] == row and "Kvaerno3" in r["label"] and "sets_per_s" in r), None)
        if first and old_solver:
            lines.append(f"Rodas3 (default) vs Kvaerno3 ({row} row): {first['sets_per_s'] / old_solver['sets_per_s']:.2f}x "
                         "the sets/s in the same run.")
    for r in results:
        if r["row"] == "sweep" and "sets_per_s" in r:
            lines.append(f"{r['label']}: {r['ratio_to_one_run']:.2f} of one run's sets/s "
                         f"({r['sets_per_s']:.0f} vs {r['run_sets_per_s']:.0f}; {r['compilations']} compilations; "
                         "target >= 0.80).")
    ex = next((r for r in results if r["row"] == "risk_exact" and "sets_per_s" in r), None)
    mc = next((r for r in results if r["row"] == "risk_mc" and "sets_per_s" in r), None)
    if ex and mc:
        lines.append(f"Exact risk is {ex['sets_per_s'] / mc['sets_per_s']:.0f}x faster than 10,000-point Monte-Carlo risk.")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    sc = [r for r in results if r["row"] == "scaling" and "sets_per_s" in r]
    for i, n in enumerate(sorted({r["n"] for r in sc})):
        for sampler, style in (("gram", "o-"), ("inputs", "s--")):
            pts = sorted((r["d"], r["sets_per_s"]) for r in sc if r["n"] == n and r.get("sampler") == sampler)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style, color=f"C{i}", label=f"n = {n}, {sampler}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("input dimension d")
    ax.set_ylabel("transfer sets per second (after compilation)")
    ax.set_title("distill end to end (flow + exact risk): gram vs inputs sampler")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _row_defaults(row: str) -> dict:
    """The keyword defaults of ``benchmarks.rows.row_<row>`` (empty for an unknown row)."""
    from .rows import ROWS

    fn = ROWS.get(row)
    if fn is None:
        return {}
    return {k: p.default for k, p in inspect.signature(fn).parameters.items() if p.default is not inspect.Parameter.empty}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes (minutes), for CI")
    p.add_argument("--only", nargs="*", default=None, help="run only these row names (e.g. flow closed_form)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per row (default 1800)")
    p.add_argument("--out", default=RESULTS,
                   help=f"folder for the results (created if needed; default ./{RESULTS})")
    p.add_argument("--gpu-check", action="store_true",
                   help="the accelerator check (one JSON in --out): engine rows (default workload 1e6 sets, closed "
                        "form 1e7, n=100), user paths with defaults, compile seconds per path and per "
                        "operation, QR accuracy, notebook timings")
    p.add_argument("--small", action="store_true", help="with --gpu-check: small sizes (CPU, seconds; for the tests)")
    p.add_argument("--row-budget", type=float, default=None, metavar="S",
                   help="with --gpu-check: seconds per row; a row that would take longer runs the chunks that fit")
    args = p.parse_args(argv)
    if args.small and not args.gpu_check:
        p.error("--small applies only to --gpu-check")
    if args.row_budget is not None and not args.gpu_check:
        p.error("--row-budget applies only to --gpu-check")
    if args.row_budget is not None and not (math.isfinite(args.row_budget) and args.row_budget > 0):
        p.error(f"--row-budget must be a finite number of seconds > 0, got {args.row_budget}")
    if not (math.isfinite(args.timeout) and args.timeout > 0):
        p.error(f"--timeout must be a finite number of seconds > 0, got {args.timeout}")
    known = sorted({row for _, row, _ in plan(args.quick)})
    unknown = [r for r in (args.only or []) if r not in known]
    if unknown:
        p.error(f"--only: no row named {', '.join(unknown)}; the rows are {', '.join(known)}")
    if Path(args.out).exists() and not Path(args.out).is_dir():
        p.error(f"--out {args.out} is a file; give a folder for the results")
    if args.gpu_check:
        from .gpu_check import run_check

        run_check(args.out, small=args.small, row_budget_s=args.row_budget)
        return 0
    results = []
    for label, row, kwargs in plan(args.quick):
        if args.only and row not in args.only:
            continue
        print(f"[bench] {label} ...", flush=True)
        r = run_row(row, kwargs, args.timeout)
        r.update({"label": label, "row": row, **{k: v for k, v in kwargs.items() if k in ("d", "n", "B")}})
        defaults = _row_defaults(row)  # the row's own d and n where the plan does not set them
        r.setdefault("d", kwargs.get("d", defaults.get("d", 1000)))
        r.setdefault("n", kwargs.get("n", defaults.get("n", 20)))
        results.append(r)
        print(f"[bench]   {json.dumps({k: v for k, v in r.items() if k not in ('label',)})}", flush=True)
    machine = f"{platform.node() or 'machine'}-{os.cpu_count()}cpu".replace(" ", "_")
    stamp = _dt.date.today().isoformat()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = out / f"{machine}-{stamp}{'-quick' if args.quick else ''}"
    meta = {"machine": machine, **machine_meta(), "date": stamp, "quick": args.quick}
    base.with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=2) + "\n")
    md = table(results)
    base.with_suffix(".md").write_text(f"# Benchmarks {machine} {stamp}{' (quick)' if args.quick else ''}\n\n{md}\n")
    try:
        plot(results, base.with_suffix(".png"))
    except Exception as e:  # plotting must not lose the numbers
        print(f"[bench] plot failed: {e}", file=sys.stderr)
    print()
    print(md)
    print(f"\nwritten {base}.json, .md, .png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
