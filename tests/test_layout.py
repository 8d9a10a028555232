"""The package's layers, read from the source text (nothing is imported, so this runs in a second).

Layers, top to bottom (docs/architecture.md): the command-line programs (tools/, ppcls.cli) ->
ppcls.analysis -> ppcls.engine -> ppcls.inference -> ppcls.convert -> ppcls.data /
ppcls.modeling / ppcls.optimizer -> ppcls.utils. A module may import its own layer and the
layers below it, never one above; no files may import each other round a loop. The public API
(ppcls/__init__.py, ppcls/api.py) sits on top but imports the library only inside its functions,
so that ``import ppcls`` stays light. Imports inside functions count like the others.
"""
import ast
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "ppcls")

# the package right under ppcls -> its layer (0 = top); modules of one layer may import each other
LAYERS = {
    "ppcls": 0, "ppcls.api": 0, "ppcls.cli": 0,
    "ppcls.analysis": 1,
    "ppcls.engine": 2,
    "ppcls.inference": 3,
    "ppcls.convert": 4,
    "ppcls.data": 5, "ppcls.modeling": 5, "ppcls.optimizer": 5,
    "ppcls.utils": 6,
}
# what the public API may import when ``import ppcls`` runs (no paddle behind any of these)
API_MODULES = ("ppcls", "ppcls.api")
LIGHT_AT_IMPORT = ("ppcls.api", "ppcls.utils", "ppcls.utils.errors", "ppcls.utils.cpu_env")


def module_name(path):
    rel = os.path.relpath(path, ROOT)[:-len(".py")].split(os.sep)
    return ".".join(rel[:-1] if rel[-1] == "__init__" else rel)


def source_modules():
    out = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for f in sorted(files):
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                out[module_name(path)] = path
    return out


def imports_of(path, name, known):
    """[(imported module, line, at module level)] of the ppcls modules ``path`` imports."""
    is_pkg = path.endswith("__init__.py")
    package = name if is_pkg else name.rpartition(".")[0]
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    top_level = {id(n) for n in tree.body}
    found = []

    def resolve(base):
        return base if base in known else None

    for node in ast.walk(tree):
        targets = []
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[:len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:           # `from pkg import module` or `from module import name`
                targets.append(resolve(f"{base}.{alias.name}") or resolve(base) or
                               (base if base.split(".")[0] in ("ppcls", "tools") else None))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                mod = alias.name
                while mod and mod not in known and "." in mod:
                    mod = mod.rpartition(".")[0]
                targets.append(mod if mod in known or mod.split(".")[0] == "tools" else None)
        for target in targets:
            if target and target != name:
                found.append((target, node.lineno, id(node) in top_level))
    return found


def layer_of(module):
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in LAYERS:
            return key, LAYERS[key]
    return None, None


def graph():
    known = source_modules()
    return known, {m: imports_of(p, m, known) for m, p in known.items()}


def test_every_package_has_a_layer():
    known = source_modules()
    missing = sorted({".".join(m.split(".")[:2]) for m in known if layer_of(m)[0] is None})
    assert not missing, (f"{missing}: give each new package a layer in tests/test_layout.py "
                         f"LAYERS and docs/architecture.md")


def test_no_upward_import():
    known, edges = graph()
    bad = []
    for mod, targets in edges.items():
        _, layer = layer_of(mod)
        for target, line, _ in targets:
            rel = os.path.relpath(known[mod], ROOT)
            if target.split(".")[0] == "tools":
                bad.append(f"{rel}:{line}: imports {target} (tools/ is above the package)")
                continue
            if mod.startswith(target + "."):          # its own parent package
                continue
            owner, target_layer = layer_of(target)
            if target_layer is not None and target_layer < layer:
                bad.append(f"{rel}:{line}: {mod} (layer {layer}) imports {target} "
                           f"({owner}, layer {target_layer}, above it)")
    assert not bad, "upward imports (move the shared piece down instead):\n" + "\n".join(bad)


def test_public_api_imports_the_library_lazily():
    known, edges = graph()
    bad = [f"{os.path.relpath(known[mod], ROOT)}:{line}: imports {target} at module level"
           for mod in API_MODULES for target, line, top in edges.get(mod, [])
           if top and target not in LIGHT_AT_IMPORT]
    assert not bad, ("`import ppcls` must stay light (import inside the functions):\n"
                     + "\n".join(bad))


def find_cycles(edges):
    """Strongly connected components of more than one module (Tarjan)."""
    graph_ = {m: sorted({t for t, _, _ in ts if t in edges and not m.startswith(t + ".")})
              for m, ts in edges.items()}
    index, low, stack, on, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph_[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in sorted(graph_):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle():
    known, edges = graph()
    lines = []
    for comp in find_cycles(edges):
        members = set(comp)
        lines.append("cycle: " + " <-> ".join(comp))
        lines += [f"  {os.path.relpath(known[m], ROOT)}:{line}: imports {t}"
                  for m in comp for t, line, _ in edges[m] if t in members]
    assert not lines, "\n".join(lines)


# ----------------------------------------------------------------------------- the checker
def _write(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_sees_upward_and_lazy_imports_and_cycles(tmp_path, monkeypatch):
    """The checks fail on a planted upward import (inside a function), a cycle and an eager
    API import, naming file and line."""
    _write(tmp_path, {
        "ppcls/__init__.py": "from .engine import train\n",
        "ppcls/utils/__init__.py": "",
        "ppcls/utils/a.py": "import os\n\n\ndef f():\n    from ..engine.train import train\n",
        "ppcls/engine/__init__.py": "",
        "ppcls/engine/train.py": "from . import loop\n",
        "ppcls/engine/loop.py": "from .train import x\n",
    })
    here = sys.modules[__name__]
    monkeypatch.setattr(here, "ROOT", str(tmp_path))
    monkeypatch.setattr(here, "PACKAGE", str(tmp_path / "ppcls"))
    with pytest.raises(AssertionError, match=r"ppcls/utils/a\.py:5: ppcls\.utils\.a \(layer 6\) "
                                             r"imports ppcls\.engine\.train"):
        test_no_upward_import()
    with pytest.raises(AssertionError, match=r"(?s)ppcls\.engine\.loop <-> ppcls\.engine\.train.*"
                                             r"ppcls/engine/loop\.py:1: imports ppcls\.engine\.train"):
        test_no_import_cycle()
    with pytest.raises(AssertionError, match=r"ppcls/__init__\.py:1: imports ppcls\.engine"):
        test_public_api_imports_the_library_lazily()
