"""Entry point: ``python -m staging ...`` (see :mod:`staging` for what it does and its exit codes)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
