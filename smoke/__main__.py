"""Entry point: ``python -m smoke ...``; the exit status is 0 (all passed), 1 (a check failed), 2 (usage)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
