"""The documentation runs: every marked example in README.md and docs/, the
API reference covers every public name, and the README's links resolve.

Marking an example runnable
---------------------------
Put the HTML comment ``<!-- runnable -->`` on the line right before a fenced
```` ```bash ```` or ```` ```python ```` block (it is invisible on GitHub and
on the built site).  This test then runs the page's marked blocks in the
order they appear, in one fresh temporary directory per page:

* a ``bash`` block runs with ``bash -euo pipefail`` (the ``jaxdistill``
  command and ``python`` are those of the interpreter running the tests, the
  checkout first on ``PYTHONPATH``);
* the ``python`` blocks of a page share one namespace, as in a tutorial (a
  later block may use the names of an earlier one), and may read the files
  an earlier ``bash`` block wrote.

``<!-- runnable: after-install -->`` marks a set-up one-liner (``python3 -m
venv .venv && ... && pip install ... && COMMAND``): only the part after the
last ``pip install ...`` runs, so the README's main job is exercised without
installing anything.  Never mark the install or test commands themselves.

Sizes: with ``JAXDISTILL_DOCS_QUICK=1`` (the default here) the number of
transfer sets of every marked example is cut to at most ``QUICK_SETS``
(``num_sets=...`` in Python, ``--num-sets ...`` on the command line) and a
command-line sweep to two points, so the whole file runs in about two minutes
on a 2-core CPU; set
``JAXDISTILL_DOCS_QUICK=0`` to run the examples at the sizes the pages give.
Keep other sizes in marked examples small (d, n, grid points), or leave the
example unmarked.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.rglob("*.md"))
MARKER = re.compile(r"^<!--\s*runnable(?::\s*(?P<mode>[\w-]+))?\s*-->\s*$")
FENCE = re.compile(r"^```(?P<lang>\w+)?\s*$")
QUICK = os.environ.get("JAXDISTILL_DOCS_QUICK", "1") != "0"
QUICK_SETS = 16


def fenced_blocks(path: Path) -> list[dict]:
    """Every fenced block of a Markdown file: language, code, first line
    number, and the runnable mode of the marker right above it (None when
    unmarked)."""
    lines = path.read_text().splitlines()
    blocks, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if m is None:
            i += 1
            continue
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        blocks.append({"lang": m.group("lang") or "", "code": "\n".join(lines[i + 1:j]), "line": i + 1,
                       "mode": None if marker is None else (marker.group("mode") or "plain")})
        i = j + 1
    return blocks


def shrink(code: str) -> str:
    """The example at quick size: at most QUICK_SETS transfer sets, and a
    command-line sweep of at most two points (the first two values of its
    first ``--grid``, the first value of each other one)."""
    if not QUICK:
        return code
    cut = lambda m: f"{m.group(1)}{min(int(m.group(2).replace('_', '')), QUICK_SETS)}"  # noqa: E731
    code = re.sub(r"(num_sets\s*=\s*)(\d[\d_]*)", cut, code)
    code = re.sub(r"(--num-sets[ =])(\d[\d_]*)", cut, code)
    grids = iter(range(10**6))
    keep = lambda m: f"--grid {m.group(1)}={','.join(m.group(2).split(',')[:2 if next(grids) == 0 else 1])}"  # noqa: E731
    return re.sub(r"--grid[ =](\w[\w-]*)=(\S+)", keep, code)


def after_install(code: str) -> str:
    """The part of a set-up one-liner after its last ``pip install`` step."""
    steps = [s.strip() for s in code.replace("\\\n", " ").split("&&")]
    last = max(i for i, s in enumerate(steps) if s.startswith("pip install") or " pip install " in s)
    rest = steps[last + 1:]
    assert rest, "an after-install block needs a command after the install"
    return " && ".join(rest)


def runnable_pages() -> list[Path]:
    return [p for p in PAGES if any(b["mode"] and b["lang"] in ("bash", "python") for b in fenced_blocks(p))]


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}"
    env["JAXDISTILL_DOCS_QUICK"] = "1" if QUICK else "0"
    env["MPLBACKEND"] = "Agg"
    return env


@pytest.fixture(scope="module", autouse=True)
def _compilation_cache(tmp_path_factory):
    """One persistent XLA compilation cache for the examples' commands: the same
    program compiled by two commands (the README's main job and a guide's run)
    is compiled once."""
    cache = tmp_path_factory.mktemp("jax-cache")
    saved = {k: os.environ.get(k) for k in ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS")}
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(cache)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.5"
    yield
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def test_markers_sit_on_bash_or_python_blocks():
    """A marker that is not right above a bash or python fence would silently run nothing."""
    for page in PAGES:
        lines = page.read_text().splitlines()
        for k, line in enumerate(lines):
            if MARKER.match(line):
                nxt = FENCE.match(lines[k + 1]) if k + 1 < len(lines) else None
                assert nxt and nxt.group("lang") in ("bash", "python"), \
                    f"{page.relative_to(ROOT)}:{k + 1}: the runnable marker must sit right above a bash/python fence"


def test_the_readme_marks_its_main_job_and_examples():
    modes = [(b["lang"], b["mode"]) for b in fenced_blocks(ROOT / "README.md") if b["mode"]]
    assert ("bash", "after-install") in modes and ("python", "plain") in modes and ("bash", "plain") in modes


def test_install_and_test_commands_are_never_run():
    for page in PAGES:
        for b in fenced_blocks(page):
            if b["mode"] == "plain":
                assert "pip install" not in b["code"] and "pytest" not in b["code"], \
                    f"{page.relative_to(ROOT)}:{b['line']}: never mark an install or test command runnable"


@pytest.mark.parametrize("page", runnable_pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_marked_examples_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for key, value in _env(tmp_path).items():
        monkeypatch.setenv(key, value)
    # the page's python blocks run in one module's namespace (a real module: dataclasses and equinox look
    # their class's module up in sys.modules)
    module = types.ModuleType("docs_page_" + re.sub(r"\W", "_", page.stem))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    namespace = module.__dict__
    for b in fenced_blocks(page):
        if not b["mode"] or b["lang"] not in ("bash", "python"):
            continue
        where = f"{page.relative_to(ROOT)}:{b['line']}"
        code = shrink(after_install(b["code"]) if b["mode"] == "after-install" else b["code"])
        if b["lang"] == "bash":
            proc = subprocess.run(["bash", "-euo", "pipefail", "-c", code], cwd=tmp_path, env=_env(tmp_path),
                                  capture_output=True, text=True, timeout=600)
            assert proc.returncode == 0, f"{where}: exit {proc.returncode}\n$ {code}\n{proc.stdout[-3000:]}\n" \
                                         f"{proc.stderr[-3000:]}"
        else:
            try:
                exec(compile(code, where, "exec"), namespace)
            except Exception as exc:  # noqa: BLE001  (re-raised with the page and line)
                raise AssertionError(f"{where}: {type(exc).__name__}: {exc}\n{code}") from exc
    import matplotlib.pyplot as plt

    plt.close("all")


def test_every_public_name_is_in_the_api_reference():
    import jaxdistill as jd

    text = "\n".join(p.read_text() for p in sorted((DOCS / "api").glob("*.md")))
    # ``::: jaxdistill.NAME``, or the defining module's path where the top-level name is ambiguous
    # (``jaxdistill.closed_form`` is both a function and a module of ``jaxdistill.students``)
    documented = {path.split(".")[-1] for path in re.findall(r"^::: jaxdistill\.([\w.]+)", text, flags=re.M)}
    missing = [name for name in jd.__all__ if name not in documented]
    assert not missing, f"public names without a ::: directive in docs/api/: {missing}"


def test_every_docs_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in DOCS.rglob("*.md"):
        rel = page.relative_to(DOCS).as_posix()
        assert f": {rel}" in nav, f"docs/{rel} is not in mkdocs.yml's nav"


def test_readme_links_resolve():
    """Relative links and images of the README point at files of the checkout
    (the docs site builds with --strict, which checks the links inside docs/)."""
    text = (ROOT / "README.md").read_text()
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if target.startswith(("http://", "https://", "#", "mailto:")):
            continue
        path = target.split("#")[0]
        assert (ROOT / path).exists(), f"README.md links to {target}, which does not exist"


def test_error_messages_name_docs_pages_that_exist():
    """The refusals that point at a docs page point at one that exists, with the anchor."""
    from jaxdistill.dispatch import HARD_TARGETS_DOC
    from jaxdistill.validation import DOCS_OPTIONS, DOCS_CLOSED_FORM

    for ref in (HARD_TARGETS_DOC, DOCS_OPTIONS, DOCS_CLOSED_FORM):
        path, _, anchor = ref.partition("#")
        page = ROOT / path
        assert page.exists(), ref
        headings = [re.sub(r"[^\w\- ]", "", h.strip("# ").lower()).replace(" ", "-")
                    for h in page.read_text().splitlines() if h.startswith("#")]
        assert not anchor or anchor in headings, f"{ref}: no heading with that anchor"
