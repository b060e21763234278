"""``python -m cnnkit``: the command line (same as the ``cnnkit`` script)."""

import sys

from .cli import main

sys.exit(main())
