"""``python -m execnet``: the `execnet` command (see execnet._cli)."""

import sys

from ._cli import main

if __name__ == "__main__":
    sys.exit(main())
