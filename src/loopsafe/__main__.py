"""``python -m loopsafe``: the same command line as the ``loopsafe`` console script."""

from __future__ import annotations

import sys

from loopsafe.cli import main

if __name__ == "__main__":
    sys.exit(main())
