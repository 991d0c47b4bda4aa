"""Shared machinery of the figure reproductions: studies, resumable grids, tables, plots.

An experiment whose points are ``jaxdistill run`` configurations (fig3,
temperature, nonlinear) is a sweep (``run_study``: ``OUT/NAME_sweep/``, the
format of ``jd.sweep``).  Any other experiment is a grid of points (a kappa, a delta, a learner, ...).  A
point's result is a small JSON file written atomically
(``runstore.write_json``) into ``OUT/NAME_points/``, next to a
``manifest.json`` holding the experiment's configuration.  Rerunning the same
experiment on the same ``OUT`` skips the finished points; a different
configuration (seed, --quick, sizes) on the same ``OUT`` is refused
(``runstore.RunStore``).  When every point is done the table ``OUT/NAME.csv``
(one row per grid point) and the figure ``OUT/NAME.png`` are (re)written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import time
from pathlib import Path
from typing import Callable, Sequence

from ..runstore import RunStore, atomic_write_text, write_json

Row = dict


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", key)


class Grid:
    """A resumable grid of points for experiment ``name`` in ``out_dir``."""

    def __init__(self, out_dir, name: str, config: dict):
        self.out = Path(out_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.store = RunStore(self.out / f"{name}_points", {"experiment": name, **config})
        self.root = self.store.root

    def path(self, key: str) -> Path:
        return self.root / f"{_safe(key)}.json"

    def run(self, keys: Sequence[str], compute: Callable[[str], list[Row]], *, progress: bool = True) -> list[Row]:
        """Compute every point not yet on disk; return all rows in grid order."""
        todo = [k for k in keys if not self.path(k).exists()]
        bar = _bar(len(keys), progress, f"{self.name} grid points", initial=len(keys) - len(todo))
        for k in keys:
            if k not in todo:
                continue
            t0 = time.perf_counter()
            rows = compute(k)
            write_json(self.path(k), {"key": k, "elapsed_s": time.perf_counter() - t0, "rows": rows})
            bar.update(1)
            bar.set_postfix_str(k)
        bar.close()
        out = []
        for k in keys:
            try:
                out += json.loads(self.path(k).read_text())["rows"]
            except (json.JSONDecodeError, KeyError) as e:
                from ..validation import JaxDistillError

                raise JaxDistillError(f"{self.path(k)} is corrupt ({e}); delete it to recompute that point") from None
        return out

    def elapsed(self) -> float:
        """Seconds spent computing the points (summed over runs)."""
        total = 0.0
        for p in self.root.glob("*.json"):
            if p.name != "manifest.json":
                total += float(json.loads(p.read_text()).get("elapsed_s", 0.0))
        return total


def run_study(out_dir, name: str, *, grid: dict | None = None, points: list | None = None, progress: bool = True,
              with_bound: bool = False, **settings):
    """An experiment's points as one ``jd.sweep`` (the options of ``jaxdistill
    run`` by name) in ``OUT/NAME_sweep/``: every point a resumable run folder,
    the study's sweep.csv, sweep.json (with its compilations) and sweep.png.
    Returns the ``SweepResult``."""
    from ..sweep import sweep

    return sweep(grid=grid, points=points, out=Path(out_dir) / f"{name}_sweep", with_bound=with_bound,
                 progress=progress, **settings)


def write_csv(path, rows: list[Row], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    for r in rows:
        w.writerow([_cell(r.get(c)) for c in columns])
    atomic_write_text(Path(path), buf.getvalue())


def _cell(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return v


def format_table(rows: list[Row], columns: Sequence[str], max_rows: int = 40) -> str:
    """A short fixed-width table of ``rows`` (numbers with 4 significant digits)."""
    def f(v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    shown = rows if len(rows) <= max_rows else rows[: max_rows // 2] + [None] + rows[-max_rows // 2:]
    cells = [[f(r.get(c)) if r is not None else "..." for c in columns] for r in shown]
    widths = [max(len(c), *(len(x[i]) for x in cells)) if cells else len(c) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(x.rjust(w) for x, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def savefig(fig, path) -> None:
    """Save a matplotlib figure atomically as PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120, bbox_inches="tight")
    from ..runstore import atomic_write_bytes

    atomic_write_bytes(Path(path), buf.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)


def pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


class _NoBar:
    def update(self, k):
        pass

    def set_postfix_str(self, s):
        pass

    def close(self):
        pass


def _bar(total: int, enabled: bool, desc: str, initial: int = 0):
    if not enabled:
        return _NoBar()
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit="point", dynamic_ncols=True, mininterval=0.5)


def fnum(x) -> float:
    """A JSON-safe float (NaN stays NaN in memory; written as null)."""
    x = float(x)
    return x
