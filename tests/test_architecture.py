"""The Python package's import structure (docs/architecture.md): every module belongs to one
layer of the table there, imports only from its own layer or the layers below, and the
imports form no cycle. Imports inside functions count as well: a lazy import is still an
edge."""

from __future__ import annotations

import ast
import fnmatch
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "cnnkit"
DOC = ROOT / "docs" / "architecture.md"


def _module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict:
    """{module name: path} of every Python module of the package, plus the C++ extension."""
    mods = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    mods["cnnkit._core"] = None
    return mods


def _layers() -> list:
    """[(layer name, [module patterns])] bottom to top, from the table in the document."""
    text = DOC.read_text()
    block = re.search(r"<!-- layers -->(.*?)<!-- /layers -->", text, re.S)
    assert block, "docs/architecture.md lost its layer table (<!-- layers --> ... <!-- /layers -->)"
    rows = []
    for line in block.group(1).splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].isdigit():
            continue
        rows.append((int(cells[0]), cells[1], re.findall(r"`([^`]+)`", cells[2])))
    assert [r[0] for r in rows] == list(range(len(rows))), "layers must be numbered 0, 1, 2, ..."
    return [(name, patterns) for _, name, patterns in rows]


def _layer_of(mods) -> dict:
    layers = _layers()
    out = {}
    for m in mods:
        hits = [i for i, (_, pats) in enumerate(layers)
                if any(fnmatch.fnmatchcase(m, p) for p in pats)]
        assert hits, f"{m} is in no layer of docs/architecture.md"
        out[m] = max(hits)  # the most specific (highest) row that names it
    return out


def _imports(name: str, path: pathlib.Path, mods) -> set:
    """The cnnkit modules ``name`` imports (anywhere in the file)."""
    is_pkg = path.name == "__init__.py"
    pkg = name if is_pkg else name.rsplit(".", 1)[0]
    deps = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            deps.update(a.name for a in node.names if a.name.split(".")[0] == "cnnkit")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "cnnkit":
                continue
            for a in node.names:  # `from pkg import submodule` is an edge to the submodule
                deps.add(f"{target}.{a.name}" if f"{target}.{a.name}" in mods else target)
    deps.discard(name)
    return deps


def _graph():
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items() if p is not None}, mods


def test_every_module_is_in_the_documented_layers():
    _layer_of(_modules())


def test_no_import_goes_up_a_layer():
    graph, mods = _graph()
    layer = _layer_of(mods)
    names = [n for n, _ in _layers()]
    upward = [f"{a} ({names[layer[a]]}) imports {b} ({names[layer[b]]})"
              for a, deps in graph.items() for b in deps
              if b in layer and layer[b] > layer[a]]
    unknown = sorted({b for deps in graph.values() for b in deps if b not in layer})
    assert not unknown, f"imports of modules that do not exist: {unknown}"
    assert not upward, "imports that go up a layer:\n" + "\n".join(sorted(upward))


def test_no_import_cycle():
    graph, _ = _graph()
    state, stack, cycles = {}, [], []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(graph.get(m, ())):
            if state.get(d) == "open":
                cycles.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d)
        stack.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_module_base_class_imports_no_layer():
    """nn.Module / Sequential know no concrete layer (no fusion decisions in the base)."""
    graph, _ = _graph()
    layers = [d for d in graph["cnnkit.nn.module"] if d.startswith("cnnkit.nn.")]
    assert not layers, f"cnnkit.nn.module imports {layers}"


@pytest.mark.parametrize("family", ["conv", "pool", "activation", "norm", "dropout", "linear",
                                    "loss", "gemm"])
def test_each_cpp_op_family_has_its_python_ops_module(family):
    """ops/ mirrors cpp/src/<family>/ (one module per op family)."""
    assert (ROOT / "cpp" / "src" / family).is_dir()
    assert (PACKAGE / "ops" / f"{family}.py").is_file()
