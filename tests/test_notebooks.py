"""Issue 7, point 7: the notebooks in experiments/ run top to bottom (CPU,
quick mode), so they never go stale.  Each notebook asserts its own
results (Thm 1 limit reached, no failed sets, risk falls with kappa and
stays under the Theorem 3 bound)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1] / "experiments"


@pytest.mark.slow  # ~1 min each on a busy 2-core machine: python -m pytest -m slow tests/test_notebooks.py
@pytest.mark.parametrize("name", ["quickstart.ipynb", "figure3.ipynb"])
def test_notebook_executes(name, tmp_path, monkeypatch):
    # the kernel inherits this environment: quick mode, this interpreter first on PATH
    monkeypatch.setenv("JAXDISTILL_QUICK", "1")
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    nb = nbformat.read(ROOT / name, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any("image/png" in o.get("data", {}) for o in outputs), "the notebook shows no plot"
    text = "".join(o.get("text", "") for o in outputs)
    assert "quick mode" in text  # it really ran the quick configuration, on CPU here
