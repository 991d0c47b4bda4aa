"""Issue 10, points 1 and 6: the module layering holds and only public names
cross module boundaries (checked on the source with ``ast``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[1] / "jaxdistill"

# Lower layers never import higher ones (docs/design.md, "Module map").
LAYERS = {
    "status": 0, "sequencing": 0, "validation": 0, "_precision": 0, "keys": 0, "progress": 0, "runstore": 0,
    "defaults": 0, "finite": 0, "traced": 0, "threefry_lowering": 0, "runner": 1, "hosts": 1, "tasks": 2, "teachers": 2, "design": 2, "datasets": 3, "students": 3, "analysis": 4, "results": 5,
    "samplers": 4, "multiclass": 5, "dispatch": 6, "simulate": 6, "checks": 6, "nonlinear": 6, "experiments": 8,
    "cli": 8, "sweep": 8, "__main__": 8,
}


def _top(module: str) -> str:
    return module.split(".")[0]


def _modules():
    for path in sorted(PKG.rglob("*.py")):
        rel = path.relative_to(PKG).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        yield path, parts


def _imports(path: Path, parts: list[str]):
    """(imported jaxdistill module path, imported names) for every import."""
    tree = ast.parse(path.read_text())
    package = parts if path.name == "__init__.py" else parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = [*base, *(node.module.split(".") if node.module else [])]
            elif node.module and node.module.startswith("jaxdistill"):
                target = node.module.split(".")[1:]
            else:
                continue
            yield target, [a.name for a in node.names], node.lineno
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("jaxdistill."):
                    yield a.name.split(".")[1:], [], node.lineno


def test_no_upward_imports():
    bad = []
    for path, parts in _modules():
        if not parts:
            continue  # the package's __init__ re-exports everything
        here = LAYERS[_top(parts[0])]
        for target, names, line in _imports(path, parts):
            if not target:  # "from . import x" inside a package
                target = [parts[0]]
            there = LAYERS.get(target[0])
            if there is None and target == [parts[0]]:
                continue
            if there is not None and there > here:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {'.'.join(target)} (layer {there} > {here})")
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_no_private_names_cross_modules():
    bad = []
    for path, parts in _modules():
        for target, names, line in _imports(path, parts):
            for name in names:
                if name.startswith("_") and name != "__version__":
                    bad.append(f"{path.relative_to(PKG.parent)}:{line} imports private {name} from {'.'.join(target)}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("needle", ["jax._src", "jax.experimental.shard_map", "jax.core.Tracer", "DESIGN.md fact",
                                    "argparse.Namespace"])
def test_only_public_jax_and_no_outside_references(needle):
    hits = []
    for path, parts in _modules():
        text = path.read_text()
        if needle in text and not (needle == "argparse.Namespace" and parts and parts[0] == "cli"):
            hits.append(str(path.relative_to(PKG.parent)))
    assert not hits, f"{needle!r} appears in {hits}"


def test_design_doc_exists_and_cited_facts_exist():
    import re

    doc = (PKG.parent / "docs" / "design.md").read_text()
    defined = set(re.findall(r"^#+\s*Fact (\d+)", doc, flags=re.M))
    cited = set()
    for path, _ in _modules():
        cited |= set(re.findall(r"docs/design\.md fact (\d+)", path.read_text()))
    assert cited <= defined, f"cited facts missing from docs/design.md: {sorted(cited - defined)}"
