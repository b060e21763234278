"""The documentation builds without a warning and documents every public name (issue 10).

Built as the README says: python3 -m sphinx -W -b html docs build/docs (needs the docs extra:
pip install ".[docs]")."""

import importlib
import os
import posixpath
import subprocess
import sys
import types
from pathlib import Path

import pytest

import cnnkit

pytest.importorskip("sphinx", reason='the docs extra is not installed: pip install ".[docs]"')
pytest.importorskip("myst_parser", reason='the docs extra is not installed: pip install ".[docs]"')

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "docs"))
import gen_api  # noqa: E402


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    env = dict(os.environ, PYTHONPATH=str(Path(cnnkit.__file__).resolve().parent.parent)
               + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b",
                        "html", str(ROOT / "docs"), str(out)], env=env, capture_output=True,
                       text=True, timeout=300)
    return r, out


def test_builds_without_warnings(built):
    r, out = built
    assert r.returncode == 0, f"sphinx -W failed:\n{r.stdout}\n{r.stderr}"
    assert "WARNING" not in r.stderr and "ERROR" not in r.stderr, r.stderr
    for page in ("index.html", "api/index.html", "guide/install.html",
                 "guide/from_pytorch.html", "guide/performance.html"):
        assert (out / page).exists(), page


def test_every_public_name_is_documented(built):
    from sphinx.util.inventory import InventoryFile

    r, out = built
    assert r.returncode == 0
    with open(out / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", posixpath.join)
    documented = {name for kind, entries in inv.items() if kind.startswith("py:")
                  for name in entries}
    mods = {m: importlib.import_module(m) for m in gen_api.public_modules()}
    assert {"cnnkit", "cnnkit.nn", "cnnkit.functional", "cnnkit.data"} <= set(mods)
    missing = []
    for modname, mod in mods.items():
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType):
                ok = obj.__name__ in documented
            else:  # documented here, or under another public path to the same object
                ok = any(f"{m}.{name}" in documented and getattr(mods[m], name, None) is obj
                         for m in mods)
            if not ok:
                missing.append(f"{modname}.{name}")
    assert not missing, f"public names missing from the reference: {missing}"


def test_every_public_module_has_a_page(built):
    r, out = built
    pages = [m for m, _ in gen_api.page_modules()]
    for m in pages:
        assert (out / "api" / (m.replace(".", "_") + ".html")).exists(), m
    for m in gen_api.public_modules():
        assert gen_api.page_of(m, pages) in pages
