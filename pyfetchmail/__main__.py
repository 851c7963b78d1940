"""``python -m pyfetchmail``: the same entry point as the console script."""

import sys

from pyfetchmail.cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
