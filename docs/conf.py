"""Sphinx configuration. Build: python3 -m sphinx -W -b html docs build/docs"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
# a development build puts _core next to python/cnnkit/: document that tree; otherwise the
# installed cnnkit (pip install ".[docs]")
if any(f.startswith("_core") for f in os.listdir(os.path.join(REPO, "python", "cnnkit"))):
    sys.path.insert(0, os.path.join(REPO, "python"))
sys.path.insert(0, HERE)

import gen_api  # noqa: E402

import cnnkit  # noqa: E402

gen_api.write(os.path.join(HERE, "api"))

project = "cnnkit"
author = "the cnnkit developers"
release = version = cnnkit.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "myst_parser"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_preserve_defaults = True
napoleon_numpy_docstring = True
napoleon_google_docstring = False
myst_heading_anchors = 3
html_theme = "alabaster"
html_title = f"cnnkit {release}"
