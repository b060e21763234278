"""Write the reference pages (docs/api/*.rst) from the public modules' ``__all__``.

Every public module (no component starting with ``_``) is either a *page module* (it gets a page)
or an implementation module inside one (``cnnkit.nn.conv`` inside ``cnnkit.nn``). Every name in
every public module's ``__all__`` is documented once, where users reach it by the shortest path
(``cnnkit.Tensor`` rather than ``cnnkit.tensor.Tensor``, ``cnnkit.nn.Conv2d`` rather than
``cnnkit.nn.conv.Conv2d``); the other places list it with a link. ``conf.py`` runs this before
each build, and ``tests/test_docs.py`` uses :func:`public_modules` to check the result.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import types

# Page modules in reading order: (module, title). A public module that is neither here nor
# inside one of these gets a page of its own at the end (new modules are never left out).
PAGES = [
    ("cnnkit", "cnnkit: top level"),
    ("cnnkit.tensor", "cnnkit.tensor: Tensor"),
    ("cnnkit.autograd", "cnnkit.autograd: Function, grad mode, the backward engine"),
    ("cnnkit.functional", "cnnkit.functional: operations"),
    ("cnnkit.nn", "cnnkit.nn: layers and losses"),
    ("cnnkit.nn.init", "cnnkit.nn.init: initialisation"),
    ("cnnkit.nn.utils", "cnnkit.nn.utils: fusion passes, eval_mode"),
    ("cnnkit.amp", "cnnkit.amp: mixed precision (autocast, bfloat16)"),
    ("cnnkit.optim", "cnnkit.optim: optimizers"),
    ("cnnkit.optim.lr_scheduler", "cnnkit.optim.lr_scheduler: learning-rate schedules"),
    ("cnnkit.data", "cnnkit.data: datasets, preprocessing, augmentation, loading"),
    ("cnnkit.models", "cnnkit.models: ready-made models"),
    ("cnnkit.train", "cnnkit.train: training and evaluation"),
    ("cnnkit.metrics", "cnnkit.metrics: evaluation metrics"),
    ("cnnkit.ensemble", "cnnkit.ensemble: model ensembles"),
    ("cnnkit.io", "cnnkit.io: saving, loading, PyTorch weights"),
    ("cnnkit.onnx", "cnnkit.onnx: ONNX export"),
    ("cnnkit.quantization", "cnnkit.quantization: int8 post-training quantization"),
    ("cnnkit.plot", "cnnkit.plot: plots"),
    ("cnnkit.summary", "cnnkit.summary: layer tables"),
    ("cnnkit.gradcheck", "cnnkit.gradcheck: gradient checking"),
    ("cnnkit.guards", "cnnkit.guards: NaN/Inf guards"),
    ("cnnkit.distributed", "cnnkit.distributed: data-parallel training over MPI"),
    ("cnnkit.shapes", "cnnkit.shapes: output-size arithmetic"),
    ("cnnkit.random", "cnnkit.random: seeds"),
    ("cnnkit.ops", "cnnkit.ops: the op families' Functions, sgemm"),
    ("cnnkit.runtime", "cnnkit.runtime: ISA, threads, convolution algorithm"),
    ("cnnkit.cli", "cnnkit.cli: the command line"),
]


def public_modules() -> list:
    """Names of every importable public cnnkit module, sorted."""
    import cnnkit

    names = {"cnnkit"}
    for info in pkgutil.walk_packages(cnnkit.__path__, "cnnkit."):
        parts = info.name.split(".")
        if any(p.startswith("_") for p in parts):
            continue  # private (_core, _registry) and __main__ (which would run the CLI)
        names.add(info.name)
    return sorted(names)


def page_modules() -> list:
    """(module, title) of every page, in order: PAGES, then any public module outside them."""
    listed = [m for m, _ in PAGES]
    extra = []
    for m in public_modules():
        if m not in listed and not any(m.startswith(p + ".") for p in listed if p != "cnnkit"):
            extra.append((m, m))
    return [(m, t) for m, t in PAGES if m in public_modules()] + extra


def page_of(module: str, pages: list) -> str:
    """The page module that documents ``module`` (itself, or its nearest listed ancestor)."""
    best = "cnnkit"
    for p in pages:
        if (module == p or module.startswith(p + ".")) and len(p) > len(best):
            best = p
    return best


def _all(mod) -> list:
    return list(getattr(mod, "__all__", []))


def _kind(obj) -> str:
    if isinstance(obj, types.ModuleType):
        return "module"
    if inspect.isclass(obj):
        return "class"
    if callable(obj):
        return "function"
    return "data"


def _canonical(mods: dict, pages: list) -> dict:
    """(id(obj), name) -> the full name it is documented under."""
    where = {}
    # page modules first, shallowest first, then in page order
    order = sorted(mods, key=lambda m: (m not in pages, m.count("."),
                                        pages.index(m) if m in pages else 0, m))
    for modname in order:
        for name in _all(mods[modname]):
            full = f"{modname}.{name}"
            if full in mods and not isinstance(getattr(mods[modname], name), types.ModuleType):
                continue  # cnnkit.summary the function vs the module: document it in the module
            where.setdefault((id(getattr(mods[modname], name)), name), full)
    return where


def _show_value(obj) -> bool:
    simple = (int, float, str) if not isinstance(obj, bool) else (bool,)
    if isinstance(obj, (tuple, list)) and all(isinstance(v, str) for v in obj):
        return len(repr(obj)) < 100
    return isinstance(obj, simple) and len(repr(obj)) < 80


def _entry(full: str, obj, name: str) -> list:
    kind = _kind(obj)
    if kind == "class":
        return [f".. autoclass:: {full}", "   :members:", "   :show-inheritance:", ""]
    if kind == "function":
        return [f".. autofunction:: {full}", ""]
    # a plain directive: autodata would show the docstring of the value's type (dict, int)
    modname, _, short = full.rpartition(".")
    lines = [f".. py:data:: {short}", f"   :module: {modname}"]
    if _show_value(obj):
        lines.append(f"   :value: {obj!r}")
    else:
        lines.append(f"   :type: {type(obj).__name__}")
    return lines + [""]


def _title(text: str) -> list:
    return [text, "=" * len(text), ""]


def write(outdir: str) -> list:
    """Write index.rst and one page per page module into ``outdir``; return the page names."""
    pages_t = page_modules()
    pages = [m for m, _ in pages_t]
    mods = {m: importlib.import_module(m) for m in public_modules()}
    canonical = _canonical(mods, pages)
    os.makedirs(outdir, exist_ok=True)
    written = []
    for page, title in pages_t:
        members = [m for m in mods if page_of(m, pages) == page]
        members.sort(key=lambda m: (m != page, m))
        lines = _title(title)
        lines += [f".. automodule:: {page}", ""]
        elsewhere = []
        for modname in members:
            mod = mods[modname]
            own = []
            for name in _all(mod):
                obj = getattr(mod, name)
                full = canonical[(id(obj), name)]
                if _kind(obj) == "module":
                    elsewhere.append((modname, name, f":mod:`{obj.__name__}`"))
                elif full == f"{modname}.{name}":
                    own.append((name, obj, full))
                else:
                    elsewhere.append((modname, name, f":py:obj:`{full}`"))
            if not own:
                continue
            if modname != page:
                lines += [f".. currentmodule:: {modname}", "", f"``{modname}``",
                          "-" * (len(modname) + 4), ""]
            for name, obj, full in own:
                lines += _entry(full, obj, name)
        if elsewhere:
            lines += [".. currentmodule:: " + page, "", "Also exported here", "-" * 18, "",
                      ".. list-table::", "   :header-rows: 1", "", "   * - name",
                      "     - documented as"]
            for modname, name, ref in elsewhere:
                lines += [f"   * - ``{modname}.{name}``", f"     - {ref}"]
            lines.append("")
        fname = page.replace(".", "_")
        with open(os.path.join(outdir, fname + ".rst"), "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        written.append(fname)
    index = _title("API reference") + [
        "Generated from the docstrings (``docs/gen_api.py``): every name in every public",
        "module's ``__all__``. Shapes follow NCHW: ``[N, C, H, W]``.", "",
        ".. toctree::", "   :maxdepth: 1", ""] + [f"   {w}" for w in written]
    with open(os.path.join(outdir, "index.rst"), "w", encoding="utf-8") as f:
        f.write("\n".join(index) + "\n")
    return written
