"""``python -m execnet``: the `execnet` command (see execnet._cli)."""

import sys

from ._cli import main

sys.exit(main())
