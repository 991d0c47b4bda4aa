"""Issue 14, Must hold 6: the accelerator check runs unchanged at small sizes
on CPU, so it never goes stale."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_small_runs_on_cpu(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.notebooks
    from benchmarks.__main__ import main

    # the notebooks section times experiments/quickstart.ipynb; here a two-cell stand-in of that name
    # (the real notebooks run in tests/test_notebooks.py; the cell timings in the tests above)
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "quickstart.ipynb", "import os\nx = os.environ['JAXDISTILL_QUICK']",
              "print('ran on cpu, quick mode' if x == '1' else 'full mode')")
    monkeypatch.setattr(benchmarks.notebooks, "NOTEBOOK_DIR", tmp_path / "nb")
    assert main(["--gpu-check", "--small", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("gpu-check-*-small-*.json")
    data = json.loads(path.read_text())
    assert data["meta"]["small"] is True
    assert [r["method"] for r in data["rows"]] == ["flow", "closed-form", "flow"]
    for r in data["rows"]:
        assert r["sets_per_s"] > 0 and r["num_failed"] == 0 and 0 < r["risk_mean"] < 0.5
    assert data["rows"][0]["max_rel_dist_closed_form"] < 2e-9
    # what users run, with defaults: a finite rate once compiled, the default workload's against the engine row
    assert [r["argv"] for r in data["defaults"]][:2] == [None, []] and len(data["defaults"]) == 5
    for r in data["defaults"]:
        assert 0 < r["sets_per_s"] < float("inf") and r["num_sets"][0] < r["num_sets"][1]
        assert r["repeats"] == 2  # small sizes: each the best of two runs
    assert all(r["ratio_to_engine"] > 0 for r in data["defaults"][:2])
    # every path's compile time on its first run
    assert [r["label"] for r in data["compile"]] == ["Gram flow (default workload)", "inputs sampler, closed form",
                                                     "w_delta", "monotonicity index", "K-class flow",
                                                     "kernel student"]
    assert all(r["compile_s"] > 0 for r in data["compile"])
    # the pieces of those paths, each compiled alone, with its compile and run seconds
    from benchmarks.compile_pieces import SMALL_SIZES

    names = [r["piece"] for r in data["pieces"]]
    assert len(names) == len(set(names)) >= 12
    assert {"Gram sampler (kappa task)", "Householder QR of X^T (reduce_data)", "Cholesky-QR2 [d, n]"} <= set(names)
    for r in data["pieces"]:
        assert r["compile_s"] > 0 and r["run_s"] > 0 and r["lower_s"] > 0
        assert (r["B"], r["n"], r["d"]) == (SMALL_SIZES["B"], SMALL_SIZES["n"], SMALL_SIZES["d"])
    assert [r["cond"] for r in data["qr_accuracy"]] == [1e2, 1e6, 1e10]
    # the notebooks, cell by cell (small: quickstart in quick mode)
    (nb,) = data["notebooks"]
    assert (nb["notebook"], nb["mode"], nb["error"]) == ("quickstart.ipynb", "quick", None)
    assert len(nb["cells"]) == 2 and sum(c["seconds"] for c in nb["cells"]) < nb["seconds"]
    assert nb["ran_on"] == "ran on cpu, quick mode"


def test_cholesky_qr2_is_exact_below_the_square_root_of_eps_and_breaks_down_above(monkeypatch):
    """The QR accuracy table: Householder QR is orthogonal to rounding at any
    condition number; Cholesky-QR2 is as accurate up to cond 1e6 and fails
    (Cholesky of a numerically singular Gram matrix) at 1e10 > eps^{-1/2}."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.compile_pieces import qr_accuracy
    from jaxdistill import precision

    with precision("float64"):
        rows = qr_accuracy(60, 12)
    for r in rows:
        h = r["householder"]
        assert h["finite"] and h["orthogonality"] < 1e-13 and h["residual"] < 1e-13
    for r in rows[:2]:
        c = r["cholesky_qr2"]
        assert c["finite"] and c["orthogonality"] < 1e-13 and c["residual"] < 1e-13
    c = rows[2]["cholesky_qr2"]
    assert not c["finite"] or c["orthogonality"] > 1e-6


def _notebook(path, *sources):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# a title"]}]
    cells += [{"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [], "source": [src]}
              for src in sources]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_notebook_timing_runs_every_code_cell_in_order_in_one_namespace(tmp_path, monkeypatch):
    """Each code cell's wall time, in order, the cells sharing one namespace
    (a later cell sees an earlier one's names); quick mode reaches the cells."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.notebooks import time_notebook

    nb = _notebook(tmp_path / "t.ipynb", "import os, time\nx = 2\ntime.sleep(0.3)",
                   "assert x == 2 and os.environ['JAXDISTILL_QUICK'] == '1'\nprint('ran on here, quick mode')")
    r = time_notebook(nb, quick=True)
    assert r["error"] is None and r["mode"] == "quick" and r["ran_on"] == "ran on here, quick mode"
    assert [c["cell"] for c in r["cells"]] == [1, 2]
    assert r["cells"][0]["seconds"] >= 0.3 > r["cells"][1]["seconds"]
    assert r["seconds"] > r["cells"][0]["seconds"] + r["cells"][1]["seconds"]
    assert r["cells"][0]["first_line"] == "import os, time"


def test_notebook_timing_reports_the_failing_cell_and_stops_there(tmp_path, monkeypatch):
    """A raising cell is reported with its index and exception; the cells
    after it do not run; full mode has no JAXDISTILL_QUICK; a notebook
    past its timeout is reported as timed out."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.notebooks import time_notebook

    monkeypatch.setenv("JAXDISTILL_QUICK", "1")
    nb = _notebook(tmp_path / "t.ipynb", "import os\nassert 'JAXDISTILL_QUICK' not in os.environ",
                   "raise ValueError('boom')", "print('never')")
    r = time_notebook(nb, quick=False)
    assert r["error"] == "cell 2: ValueError: boom" and r["mode"] == "full"
    assert [c["cell"] for c in r["cells"]] == [1, 2] and r["cells"][0]["error"] is None
    slow = _notebook(tmp_path / "slow.ipynb", "import time\ntime.sleep(30)")
    r = time_notebook(slow, quick=True, timeout_s=3)
    assert r["error"] == "timed out after 3 s" and r["seconds"] < 20


@pytest.mark.parametrize("module, words", [("compile_pieces", ["OUT.json", "--small", "Cholesky-QR2"]),
                                           ("threefry_lowering", ["OUT.json", "--repeats"]),
                                           ("notebooks", ["OUT.json", "NAME.ipynb", "--quick", "--timeout"])])
def test_benchmark_module_help(module, words, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    import importlib

    with pytest.raises(SystemExit) as exit_info:
        importlib.import_module(f"benchmarks.{module}").main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: python -m benchmarks.{module}") and all(w in out for w in words)


@pytest.mark.parametrize("argv, message", [(["x.json", "nope.ipynb"], "unknown notebook 'nope.ipynb'"),
                                           (["x.json", "--timeout", "0"], "--timeout must be > 0")])
def test_notebook_timing_refuses_bad_arguments(argv, message, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.notebooks import main

    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_threefry_lowering_benchmark_refuses_no_repeats(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.threefry_lowering import main

    with pytest.raises(SystemExit):
        main(["x.json", "--repeats", "0"])
    assert "--repeats must be >= 1, got 0" in capsys.readouterr().err


def test_gpu_check_row_budget_runs_the_chunks_that_fit(tmp_path, monkeypatch):
    """A budget far below one chunk's time leaves exactly one chunk per row, and says so."""
    monkeypatch.syspath_prepend(str(ROOT))
    import benchmarks.compile_pieces
    import benchmarks.notebooks
    from benchmarks.__main__ import main

    # this test is about the rows: the pieces and notebooks sections are the test above's
    monkeypatch.setattr(benchmarks.compile_pieces, "run_pieces", lambda small: ([], []))
    monkeypatch.setattr(benchmarks.notebooks, "time_notebooks", lambda names, **kw: [])
    assert main(["--gpu-check", "--small", "--row-budget", "1e-6", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("gpu-check-*-small-*.json")
    data = json.loads(path.read_text())
    assert data["meta"]["row_budget_s"] == 1e-6
    for r in data["rows"]:
        assert r["num_sets"] == r["chunk_size"] <= r["num_sets_planned"] and r["one_chunk_s"] > 0
        assert r["num_failed"] == 0


@pytest.mark.parametrize("argv, message", [(["--small"], "--small applies only to --gpu-check"),
                                           (["--row-budget", "5"], "--row-budget applies only to --gpu-check"),
                                           (["--gpu-check", "--row-budget", "0"],
                                            "--row-budget must be a finite number of seconds > 0"),
                                           (["--timeout", "nan"], "--timeout must be a finite number of seconds > 0"),
                                           (["--only", "flow", "nosuchrow"], "--only: no row named nosuchrow; the "
                                                                             "rows are closed_form"),
                                           (["--out", __file__], "is a file; give a folder for the results")])
def test_gpu_check_options_are_refused_where_they_do_nothing(argv, message, monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.__main__ import main

    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


def test_sweep_row_compares_a_study_with_one_run_of_its_size(monkeypatch):
    """The sweep row (a study vs one run of the same total size) counts the
    sets of every point and the sweep's compilations, and its ratio is the
    two measured rates' quotient."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.rows import row_sweep

    r = row_sweep(kappas=(0.5, 2.0), ns=(3, 5), d=12, num_sets=8, method="closed-form")
    assert r["points"] == 4 and r["num_sets"] == 32 and r["failed"] == 0
    assert r["compilations"] >= 1
    assert r["ratio_to_one_run"] == pytest.approx(r["sets_per_s"] / r["run_sets_per_s"])


def test_kclass_row_runs_at_small_size(monkeypatch):
    """The digits K-class row (issue 23 point 4) at a small size: every set converges to its limit."""
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.rows import row_kclass

    out = row_kclass(B=4, n=6, chunk=2)
    assert out["sets_per_s"] > 0 and out["sets_per_cpu_s"] > 0 and out["failed"] == 0
    assert out["max_rel_err"] < 2e-9 and (out["d"], out["n"]) == (64, 6) and out["mean_steps"] > 0
