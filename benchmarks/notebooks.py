"""Notebook timings: the notebooks of experiments/ run top to bottom, cell by cell.

    python -m benchmarks.notebooks OUT.json [--quick] [--timeout S] [NAME.ipynb ...]

Every code cell of a notebook runs in order in one fresh Python process (the
same interpreter, matplotlib's Agg backend, the working directory a
temporary folder, this checkout first on PYTHONPATH), as a notebook kernel
would run them, without Jupyter (the accelerator machines need only jax).
Full mode by default, quick mode (``JAXDISTILL_QUICK=1``, the test suite's)
with ``--quick``.  For each notebook: the wall seconds of the whole run
(process start and imports included) and of every cell, the first error
(the cell, its exception) or the timeout, and the notebook's own last line
saying where it ran.  ``python -m benchmarks --gpu-check`` writes the same
records as its ``notebooks`` section (targets on one GPU, full mode:
quickstart <= 30 s, figure3 <= 120 s).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "experiments"
NOTEBOOKS = ("quickstart.ipynb", "figure3.ipynb", "studies.ipynb")
TARGETS_S = {"quickstart.ipynb": 30.0, "figure3.ipynb": 120.0}
"""Full-mode seconds on one GPU, compilation included."""
MARK = "\x00jaxdistill-cell "

DRIVER = r"""
import json, sys, time
import matplotlib
matplotlib.use("Agg")
cells = json.load(sys.stdin)
namespace = {"__name__": "__main__"}
for index, source in cells:
    t0 = time.perf_counter()
    error = None
    try:
        exec(compile(source, f"<cell {index}>", "exec"), namespace)
    except BaseException as e:  # noqa: BLE001 - reported with the cell, then the run stops as a notebook's would
        error = f"{type(e).__name__}: {e}"
    sys.stdout.flush()
    print(MARK + json.dumps({"cell": index, "seconds": time.perf_counter() - t0, "error": error}), flush=True)
    if error is not None:
        break
"""


def code_cells(path: Path) -> list[tuple[int, str]]:
    """(index among all cells, source) of every code cell of the notebook."""
    nb = json.loads(Path(path).read_text())
    return [(i, "".join(c["source"])) for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"]


def time_notebook(path: str | Path, *, quick: bool, timeout_s: float = 600.0) -> dict:
    """Run the notebook's code cells in order in a fresh process (module
    docstring) and return its timing record."""
    path = Path(path)
    cells = code_cells(path)
    env = dict(os.environ)
    env.pop("JAXDISTILL_QUICK", None)
    if quick:
        env["JAXDISTILL_QUICK"] = "1"
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["MPLBACKEND"] = "Agg"
    record = {"notebook": path.name, "mode": "quick" if quick else "full", "seconds": None, "cells": [],
              "error": None, "ran_on": None, "target_s": None if quick else TARGETS_S.get(path.name)}
    driver = f"MARK = {MARK!r}\n" + DRIVER
    with tempfile.TemporaryDirectory(prefix="jaxdistill-notebook-") as cwd:
        t0 = time.perf_counter()
        try:
            proc = subprocess.run([sys.executable, "-c", driver], input=json.dumps(cells), capture_output=True,
                                  text=True, cwd=cwd, env=env, timeout=timeout_s)
            stdout, stderr = proc.stdout, proc.stderr
        except subprocess.TimeoutExpired as e:
            stdout = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
            stderr = ""
            record["error"] = f"timed out after {timeout_s:g} s"
        record["seconds"] = time.perf_counter() - t0
    sources = dict(cells)
    for line in stdout.splitlines():
        if line.startswith(MARK):
            cell = json.loads(line[len(MARK):])
            cell["first_line"] = next((s for s in sources[cell["cell"]].splitlines() if s.strip()), "")[:80]
            record["cells"].append(cell)
            if cell["error"] and record["error"] is None:
                record["error"] = f"cell {cell['cell']}: {cell['error']}"
        elif line.startswith("ran on "):
            record["ran_on"] = line
    if record["error"] is None and len(record["cells"]) < len(cells):
        last = stderr.strip().splitlines()[-1] if stderr.strip() else "no message"
        record["error"] = f"the process stopped after {len(record['cells'])} of {len(cells)} cells: {last}"
    return record


def time_notebooks(names=NOTEBOOKS, *, quick: bool, timeout_s: float = 600.0) -> list[dict]:
    """``time_notebook`` of experiments/NAME for every name, printing one line each."""
    rows = []
    for name in names:
        row = time_notebook(NOTEBOOK_DIR / name, quick=quick, timeout_s=timeout_s)
        rows.append(row)
        status = "ok" if row["error"] is None else row["error"]
        print(f"[notebooks] {name} ({row['mode']} mode): {row['seconds']:.1f} s, {status}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m benchmarks.notebooks",
                                description="Run the notebooks of experiments/ top to bottom, cell by cell, in a "
                                            "fresh process and write the seconds of each notebook and cell (one "
                                            "JSON). Exit status 1 when a notebook fails or times out.")
    p.add_argument("out", metavar="OUT.json", help="the JSON file to write")
    p.add_argument("names", nargs="*", metavar="NAME.ipynb",
                   help=f"the notebooks to run (default: all of {', '.join(NOTEBOOKS)})")
    p.add_argument("--quick", action="store_true", help="quick mode (JAXDISTILL_QUICK=1, the test suite's sizes)")
    p.add_argument("--timeout", type=float, default=600.0, metavar="S",
                   help="seconds a notebook may run before it is stopped (default 600)")
    args = p.parse_args(argv)
    unknown = [n for n in args.names if n not in NOTEBOOKS]
    if unknown:
        p.error(f"unknown notebook {unknown[0]!r}; the notebooks are {', '.join(NOTEBOOKS)}")
    if not args.timeout > 0:
        p.error(f"--timeout must be > 0 seconds, got {args.timeout}")
    rows = time_notebooks(args.names or NOTEBOOKS, quick=args.quick, timeout_s=args.timeout)
    Path(args.out).write_text(json.dumps({"notebooks": rows}, indent=2) + "\n")
    return 0 if all(r["error"] is None for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
