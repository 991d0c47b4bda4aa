"""Issue 7, point 7: the notebooks in experiments/ run top to bottom (CPU,
quick mode), so they never go stale.  Each notebook asserts its own
results (Thm 1 limit reached, no failed sets, risk falls with kappa and
stays under the Theorem 3 bound)."""

from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = Path(__file__).resolve().parents[1] / "experiments"
NOTEBOOKS = ["quickstart.ipynb", "figure3.ipynb", "studies.ipynb"]


def _setup_cell(name: str) -> str:
    nb = nbformat.read(ROOT / name, as_version=4)
    cells = [c.source for c in nb.cells if c.cell_type == "code" and "IN_COLAB" in c.source]
    assert len(cells) == 1, "one setup cell expected"
    return cells[0]


@pytest.mark.parametrize("name", NOTEBOOKS)
@pytest.mark.parametrize("where", ["checkout", "pip_spec"])
def test_colab_setup_installs_only_jaxdistill(name, where, tmp_path, monkeypatch):
    """The setup cell, run as on Colab (google.colab imported): one pip call that
    installs jaxdistill -- the checkout the notebook sits in, or JAXDISTILL_PIP_SPEC
    when there is none -- and nothing that names jax, so Colab's jax (with its
    GPU/TPU support) is never replaced or downgraded."""
    import jax  # noqa: F401  (imported before google.colab is faked: the cell's own import is then a no-op)

    calls = []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, *a, **k: calls.append(list(cmd)))
    monkeypatch.setenv("JAXDISTILL_PIP_SPEC", "git+https://example.invalid/jaxdistill")
    monkeypatch.chdir(ROOT if where == "checkout" else tmp_path)  # the checkout is ROOT/..
    exec(compile(_setup_cell(name), name, "exec"), {"__name__": "__main__"})
    assert len(calls) == 1, calls
    cmd = calls[0]
    assert cmd[:4] == [sys.executable, "-m", "pip", "install"], cmd
    expected = str(ROOT.parent) if where == "checkout" else "git+https://example.invalid/jaxdistill"
    assert cmd[-1] == expected, cmd
    assert not [a for a in cmd if "jax" in a.lower() and a != expected], cmd  # no jax, jaxlib, jax[cuda]...
    assert not [a for a in cmd if a.startswith(("-U", "--upgrade", "--force", "--no-deps"))], cmd


@pytest.mark.parametrize("name", NOTEBOOKS)  # ~1 min each in quick mode, part of the default run
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
