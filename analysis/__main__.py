"""Entry point: ``python -m analysis ...``; exit 0 PROMOTE, 3 HOLD, 1 ROLLBACK (or no answer), 2 usage."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
